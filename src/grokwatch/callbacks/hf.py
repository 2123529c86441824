"""`GrokwatchCallback` for the Hugging Face `Trainer`: alpha per layer, traps and the phase in its logs.

    trainer = Trainer(model, args, train_dataset=ds, callbacks=[GrokwatchCallback(every=500)])

Every `every` optimizer steps the weights are copied to CPU and analysed in a
background thread (`grokwatch.Monitor`). A finished result asks the Trainer to log
(`control.should_log`) and its numbers are added to that `logs` dict
(`grokwatch/alpha/<layer>`, `grokwatch/traps`, `grokwatch/phase` 0 pre / 1
grokking / 2 anti, `grokwatch/level`, `grokwatch/step` = the step the weights were
taken at), so they reach `state.log_history` and the reporting integrations
(TensorBoard, W&B, ...). Why the callback moves itself to the front of the
Trainer's callback list at `on_train_begin`: the Trainer calls `on_log` on its
callbacks in order with one dict, and the reporting integrations come before
user callbacks, so numbers added later would miss them.

On each save (`on_save`) the saved checkpoints of `output_dir` are analysed into
that folder's cache, so `grokwatch report OUTPUT_DIR` afterwards is instant.
`stop_on` ends training (`control.should_training_stop`), `save_on` requests a
save (`control.should_save`) at the first step at that level.
Needs the extra: pip install 'grokwatch[hf]'.
"""

from __future__ import annotations

import sys

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - depends on the extra
    raise ImportError("grokwatch.callbacks.hf needs transformers: pip install 'grokwatch[hf]'") from e

from grokwatch.callbacks.monitor import LEVELS, Monitor, MonitorResult
from grokwatch.settings import PhaseRules, Settings

__all__ = ["GrokwatchCallback"]


class GrokwatchCallback(TrainerCallback):
    def __init__(
        self,
        every: int = 500,
        settings: Settings | None = None,
        rules: PhaseRules | None = None,
        stop_on: str | None = None,
        save_on: str | None = None,
        background: bool = True,
    ):
        self.every, self.settings, self.rules = every, settings or Settings(traps=True), rules or PhaseRules()
        self.stop_on, self.save_on, self.background = stop_on, save_on, background
        Monitor(None, every, stop_on=stop_on)  # validate the arguments now
        Monitor(None, every, stop_on=save_on)
        self.monitor: Monitor | None = None
        self._pending: dict[str, float] = {}
        self._saved = False

    @property
    def results(self) -> list[MonitorResult]:
        return self.monitor.results if self.monitor else []

    def _to_front(self) -> None:
        """Move this callback before the reporting integrations (see the module docstring)."""
        frame = sys._getframe(1)
        while frame is not None:
            handler = frame.f_locals.get("self")
            cbs = getattr(handler, "callbacks", None)
            if isinstance(cbs, list) and self in cbs and hasattr(handler, "call_event"):
                cbs.remove(self)
                cbs.insert(0, self)
                return
            frame = frame.f_back

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._to_front()
        self.monitor = Monitor(
            model, self.every, self.settings, self.rules, stop_on=self.stop_on, background=self.background
        )

    def _collect(self, control, results: list[MonitorResult]) -> None:
        for res in results:
            self._pending = {**res.metrics(), "grokwatch/step": float(res.step)}
            control.should_log = True
            if self.save_on and not self._saved and LEVELS.index(res.level) >= LEVELS.index(self.save_on):
                self._saved = True
                control.should_save = True
        if self.monitor.should_stop:
            control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.monitor is not None:
            self._collect(control, self.monitor.step(state.global_step))
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._pending and logs is not None:
            logs.update(self._pending)
            if state.log_history:
                state.log_history[-1].update(self._pending)
            self._pending = {}

    def on_save(self, args, state, control, **kwargs):
        if self.monitor is not None and args.output_dir:
            self.monitor.scan_saved(args.output_dir)

    def on_train_end(self, args, state, control, **kwargs):
        if self.monitor is None:
            return
        results = self.monitor.close()
        if results:
            res = results[-1]
            state.log_history.append(
                {**res.metrics(), "grokwatch/step": float(res.step), "step": state.global_step}
            )
