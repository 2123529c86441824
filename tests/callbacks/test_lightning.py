"""A real Lightning run of a tiny model (CPU, built in the test) with GrokwatchCallback."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from grokwatch.callbacks.lightning import GrokwatchCallback  # noqa: E402
from grokwatch.scan import scan_folder  # noqa: E402
from grokwatch.settings import Settings  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self, heavy: bool):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = torch.nn.Linear(64, 64), torch.nn.Linear(64, 4)
        if heavy:
            with torch.no_grad():
                w = np.random.default_rng(0).standard_t(1.2, size=(64, 64))
                self.fc1.weight.copy_(torch.from_numpy(w))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.fc2(torch.relu(self.fc1(x))), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)


def _loader(n=256):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 64, generator=g), torch.randint(0, 4, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def _trainer(tmp_path, cb, max_steps, **kw):
    return pl.Trainer(
        max_steps=max_steps,
        callbacks=[cb],
        logger=pl.loggers.CSVLogger(tmp_path, name="logs"),
        default_root_dir=tmp_path,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


def test_records_logged_and_cached(tmp_path):
    cb = GrokwatchCallback(every=5)
    ckdir = tmp_path / "ckpts"
    mc = pl.callbacks.ModelCheckpoint(dirpath=ckdir, every_n_train_steps=10, save_top_k=-1)
    trainer = pl.Trainer(
        max_steps=20,
        callbacks=[cb, mc],
        logger=pl.loggers.CSVLogger(tmp_path, name="logs"),
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(heavy=False), _loader())
    steps = [r.step for r in cb.results]
    # a snapshot still waiting when a newer one comes is replaced (never queued), the newest always runs
    assert set(steps) <= {5, 10, 15, 20} and steps[-1] == 20
    assert cb.monitor.skipped + len(steps) == 4
    rows = list(csv.DictReader(open(trainer.logger.experiment.metrics_file_path)))
    logged = {int(r["step"]) for r in rows if r.get("grokwatch/alpha/fc1.weight")}
    assert logged == {r.step for r in cb.results}
    assert "grokwatch/phase" in trainer.callback_metrics
    # the saved .ckpt files were analysed into the folder's cache: report on it is instant
    res = scan_folder(ckdir, Settings(traps=True), workers=1)
    assert res.checkpoints and res.computed == 0


def test_stop_on(tmp_path):
    cb = GrokwatchCallback(every=5, stop_on="anti-grokking", save_on="anti-grokking")
    trainer = _trainer(tmp_path, cb, max_steps=3000)
    trainer.fit(Tiny(heavy=True), _loader(n=8 * 400))
    assert cb.monitor.stop_reason is not None and cb.monitor.stop_reason.level == "anti-grokking"
    assert trainer.global_step < 3000
    saved = list(tmp_path.rglob("grokwatch-step=*.ckpt"))
    assert [p.name for p in saved] == [f"grokwatch-step={cb.monitor.stop_reason.step}.ckpt"]
