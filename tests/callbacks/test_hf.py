"""A real transformers.Trainer run of a tiny GPT-2 built from a config (CPU, nothing downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from grokwatch.callbacks.hf import GrokwatchCallback  # noqa: E402
from grokwatch.scan import scan_folder  # noqa: E402
from grokwatch.settings import Settings  # noqa: E402


def _model(heavy: bool):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=64, n_positions=16)
    model = transformers.GPT2LMHeadModel(cfg)
    if heavy:
        w = model.transformer.h[0].mlp.c_fc.weight
        with torch.no_grad():
            w.copy_(torch.from_numpy(np.random.default_rng(0).standard_t(1.2, size=tuple(w.shape))))
    return model


class Data(torch.utils.data.Dataset):
    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 64, (n, 16), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


def _args(tmp_path, max_steps, **kw):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        learning_rate=1e-4,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=1000,
        **kw,
    )


class Spy(transformers.TrainerCallback):
    """A stand-in for a reporting integration (TensorBoard, W&B): records what on_log receives."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def test_logs_and_cache(tmp_path):
    spy, cb = Spy(), GrokwatchCallback(every=5)
    trainer = transformers.Trainer(
        model=_model(heavy=False),
        args=_args(tmp_path, 20, save_steps=10, save_strategy="steps"),
        train_dataset=Data(),
        callbacks=[spy, cb],  # the integration comes first, as report_to= puts it
    )
    trainer.train()
    assert cb.results and cb.results[-1].step == 20
    seen = [d for d in spy.logs if "grokwatch/phase" in d]
    assert seen, spy.logs  # the integration received the numbers
    hist = [d for d in trainer.state.log_history if "grokwatch/phase" in d]
    assert {int(d["grokwatch/step"]) for d in hist} == {r.step for r in cb.results}
    assert any(k.startswith("grokwatch/alpha/transformer.h.0.mlp.c_fc") for k in hist[0])
    # the checkpoint-N folders were analysed into the output folder's cache
    res = scan_folder(tmp_path / "out", Settings(traps=True), workers=1)
    assert [c.step for c in res.checkpoints] == [10, 20] and res.computed == 0


def test_stop_on(tmp_path):
    cb = GrokwatchCallback(every=5, stop_on="anti-grokking")
    trainer = transformers.Trainer(
        model=_model(heavy=True),
        args=_args(tmp_path, 2000, save_strategy="no"),
        train_dataset=Data(n=4 * 2000),
        callbacks=[cb],
    )
    trainer.train()
    assert cb.monitor.stop_reason is not None and cb.monitor.stop_reason.level == "anti-grokking"
    assert trainer.state.global_step < 2000
