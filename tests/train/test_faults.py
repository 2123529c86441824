"""Faults while training: kill -9 at random moments, a full disk. What is on disk stays loadable and
a resumed run ends bit-identical to one that was never stopped."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from grokwatch.cli import app
from grokwatch.train import TrainConfig, train

ARGS = ["--task", "modadd", "--p", "23", "--width", "64", "--embed-dim", "32", "--checkpoints", "40"]
STEPS = "3000"


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "grokwatch", "train", "--steps", STEPS, "--out", str(out), *ARGS]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}


def _all_loadable(out: Path) -> int:
    """Every visible checkpoint is complete: header, every tensor and the metadata read back."""
    n = 0
    for p in sorted(out.glob("step_*.safetensors")):
        with safe_open(str(p), framework="pt") as f:
            assert f.metadata()["step"] == str(int(p.stem.split("_")[1])), p
            for k in f.keys():
                f.get_tensor(k)
        n += 1
    if (out / "train_state.pt").exists():
        torch.load(out / "train_state.pt", map_location="cpu", weights_only=True)
    return n


KILL_CFG = dict(task="modadd", p=23, width=64, embed_dim=32, checkpoints=40)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_bit_identical(tmp_path):
    """24 + 3 SIGKILLs at random moments of training and checkpoint writing, resuming each time.

    The runs are forked from a forkserver that has imported torch once, so a trial costs
    milliseconds to start instead of a fresh interpreter's seconds of imports; then three real
    `grokwatch train` processes are killed once each has written a checkpoint, and the last
    resume and the reference run go through the real command too.
    """
    import multiprocessing as mp

    from helpers import train_child

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["helpers", "grokwatch.train", "grokwatch.train.loop", "torch._dynamo"])
    steps = int(STEPS)
    ref = tmp_path / "ref"
    r = subprocess.run(_cmd(ref), env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    total = len(list(ref.glob("step_*.safetensors")))
    ms = re.search(r"([\d.]+) ms/step", r.stdout + r.stderr)
    assert ms, r.stdout + r.stderr
    run_s = steps * float(ms.group(1)) / 1000  # training time of one uninterrupted run
    warm = ctx.Process(target=train_child, args=(str(tmp_path / "warm"), 1, KILL_CFG))
    warm.start()  # starts the forkserver and its imports once, outside the trials
    warm.join(600)
    assert warm.exitcode == 0
    run = tmp_path / "run"
    rng = random.Random(14)
    kills, seen = 0, []
    for _trial in range(24):
        p = ctx.Process(target=train_child, args=(str(run), steps, KILL_CFG))
        p.start()
        time.sleep(rng.uniform(0.0, run_s / 10))
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.join(60)
        seen.append(_all_loadable(run))
    print(f"one run {run_s:.1f} s; checkpoints on disk after each kill: {seen}")
    assert kills >= 20  # each trial really killed a running process
    # the kills landed while training and writing: progress was made, and cut short before the end
    assert 0 < seen[-1] < total and len(set(seen)) > 3, seen
    # and the real command: `grokwatch train` processes SIGKILLed once they have written a new checkpoint
    for _trial in range(3):
        before = len(list(run.glob("step_*.safetensors")))
        p = subprocess.Popen(_cmd(run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while len(list(run.glob("step_*.safetensors"))) == before and p.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, run_s / 20))
        assert p.poll() is None, "the run finished before it could be killed"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(60)
        seen.append(_all_loadable(run))
    assert seen[-1] < total, seen
    r = subprocess.run(_cmd(run), env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert _all_loadable(run) == total
    names = sorted(p.name for p in ref.glob("step_*.safetensors"))
    assert sorted(p.name for p in run.glob("step_*.safetensors")) == names
    for name in names:
        a, b = load_file(ref / name), load_file(run / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)  # bit-identical, not merely close


def test_full_disk_keeps_the_previous_checkpoint_and_names_the_path(tmp_path, monkeypatch):
    """A failing writer (ENOSPC on every file write) stands in for a full disk or quota."""
    import grokwatch.checkpoints.atomic as atomic

    out = tmp_path / "run"
    cfg = dict(task="modadd", p=23, width=64, embed_dim=32, checkpoints=4)
    train(TrainConfig(steps=40, **cfg), out)  # a first run, its checkpoints complete
    before = {p.name: p.read_bytes() for p in out.glob("step_*.safetensors")}
    state_before = (out / "train_state.pt").read_bytes()

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fdopen(fd, *a, **k):
        return FullDisk(real_fdopen(fd, *a, **k))

    monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    args = ["--task", "modadd", "--p", "23", "--width", "64", "--embed-dim", "32", "--checkpoints", "4"]
    r = CliRunner().invoke(app, ["train", "--steps", "400", "--out", str(out), *args])
    assert r.exit_code == 2, r.output
    err = [x for x in r.stderr.splitlines() if x.startswith("grokwatch: error")]
    assert len(err) == 1 and err[0].startswith(f"grokwatch: error: {out / 'step_'}"), err
    assert "No space left on device" in err[0] and "rerun" in err[0]
    # nothing half-written, nothing lost: the earlier files are byte for byte what they were
    assert {p.name: p.read_bytes() for p in out.glob("step_*.safetensors")} == before
    assert (out / "train_state.pt").read_bytes() == state_before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # with space again, the same command resumes
    monkeypatch.setattr(atomic.os, "fdopen", real_fdopen)
    res = train(TrainConfig(steps=400, **cfg), out)
    assert res.start_step == 40 and res.step == 400
