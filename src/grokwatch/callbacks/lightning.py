"""`GrokwatchCallback` for Lightning: alpha per layer, traps and the phase in the trainer's loggers.

    trainer = lightning.Trainer(callbacks=[GrokwatchCallback(every=500, stop_on="anti-grokking")])

Every `every` optimizer steps the weights are copied to CPU and analysed in a
background thread (`grokwatch.Monitor`); finished results are written to every
logger of the trainer at the step the weights were taken (`log_metrics(step=...)`,
so they land in TensorBoard/W&B/CSV as the run's other metrics do) and set in
`trainer.callback_metrics` (`grokwatch/alpha/<layer>`, `grokwatch/traps`,
`grokwatch/phase` 0 pre / 1 grokking / 2 anti, `grokwatch/level`), so
EarlyStopping or ModelCheckpoint can monitor them. At a checkpoint save, the
saved files are analysed into the checkpoint folder's cache, so `grokwatch
report` on it afterwards is instant. `stop_on` stops training, `save_on` saves a
checkpoint (`grokwatch-step=N.ckpt` in the checkpoint folder) at the first step
at that level. Needs the extra: pip install 'grokwatch[lightning]'.
"""

from __future__ import annotations

from pathlib import Path

try:
    from lightning.pytorch import Callback
except ImportError as e:  # pragma: no cover - depends on the extra
    raise ImportError(
        "grokwatch.callbacks.lightning needs Lightning: pip install 'grokwatch[lightning]'"
    ) from e

from grokwatch.callbacks.monitor import Monitor, MonitorResult
from grokwatch.settings import PhaseRules, Settings

__all__ = ["GrokwatchCallback"]


class GrokwatchCallback(Callback):
    def __init__(
        self,
        every: int = 500,
        settings: Settings | None = None,
        rules: PhaseRules | None = None,
        stop_on: str | None = None,
        save_on: str | None = None,
        background: bool = True,
    ):
        super().__init__()
        self.every, self.settings, self.rules = every, settings or Settings(traps=True), rules or PhaseRules()
        self.stop_on, self.save_on, self.background = stop_on, save_on, background
        Monitor(None, every, stop_on=stop_on)  # validate the arguments now, not at the first step
        Monitor(None, every, stop_on=save_on)
        self.monitor: Monitor | None = None
        self._saved = False
        self._scan_dir: Path | None = None

    @property
    def results(self) -> list[MonitorResult]:
        return self.monitor.results if self.monitor else []

    def on_fit_start(self, trainer, pl_module) -> None:
        self.monitor = Monitor(
            pl_module, self.every, self.settings, self.rules, stop_on=self.stop_on, background=self.background
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.monitor is None:
            return
        if self._scan_dir is not None:  # the file of the last save is complete by now
            self.monitor.scan_saved(self._scan_dir)
            self._scan_dir = None
        self._publish(trainer, pl_module, self.monitor.step(trainer.global_step))

    def _publish(self, trainer, pl_module, results: list[MonitorResult]) -> None:
        for res in results:
            metrics = res.metrics()
            for lg in trainer.loggers:
                lg.log_metrics(metrics, step=res.step)
            import torch

            for k, v in metrics.items():
                trainer.callback_metrics[k] = torch.tensor(v)
            if self.save_on and not self._saved and _at_or_above(res.level, self.save_on):
                self._saved = True
                folder = Path(
                    getattr(trainer.checkpoint_callback, "dirpath", None) or trainer.default_root_dir
                )
                trainer.save_checkpoint(str(folder / f"grokwatch-step={res.step}.ckpt"))
        if self.monitor.should_stop:
            trainer.should_stop = True

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        cb = trainer.checkpoint_callback
        dirpath = getattr(cb, "dirpath", None)
        if dirpath:
            self._scan_dir = Path(dirpath)  # analysed after the file is written

    def on_train_end(self, trainer, pl_module) -> None:
        if self.monitor is None:
            return
        if self._scan_dir is not None:
            self.monitor.scan_saved(self._scan_dir)
            self._scan_dir = None
        self._publish(trainer, pl_module, self.monitor.close())


def _at_or_above(level: str, threshold: str) -> bool:
    order = ("none", "trap", "anti-grokking")
    return order.index(level) >= order.index(threshold)
