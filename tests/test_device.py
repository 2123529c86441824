"""--device: the torch eigensolve path (run here on CPU torch, the code a GPU runs) against the numpy
path, its batching, the cache shared across devices, and a requested cuda that is not there."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import llama_block, write_run
from safetensors.numpy import save_file
from typer.testing import CliRunner

import grokwatch
from grokwatch import device as device_mod
from grokwatch.analyze import analyze_checkpoints
from grokwatch.analyze_device import analyze_on_device
from grokwatch.checkpoints import discover
from grokwatch.cli import app
from grokwatch.errors import DeviceError
from grokwatch.settings import Settings
from grokwatch.spectral.esd import gram_eigenvalues
from grokwatch.spectral.torch_eig import GramBatcher

FLOATS = (
    "alpha",
    "xmin",
    "D",
    "sigma",
    "lambda_max",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "entropy",
)


@pytest.fixture
def mixed(tmp_path):
    """MLP checkpoints, a bf16 sharded block, a conv kernel, a NaN layer: every branch of the path."""
    root = write_run(tmp_path / "run")
    llama_block(root / "checkpoint-2000", d=40)
    rng = np.random.default_rng(3)
    W = rng.standard_t(2.5, size=(64, 32, 3, 3)).astype(np.float32)
    bad = rng.normal(size=(50, 40)).astype(np.float32)
    bad[3, 4] = np.nan
    save_file(
        {"conv.weight": W, "bad.weight": bad, "fc.weight": rng.normal(size=(30, 70))},
        str(root / "step_3000.safetensors"),
    )
    return root


def _compare(cpu, dev):
    assert [(r.checkpoint, r.layer) for r in cpu] == [(r.checkpoint, r.layer) for r in dev]
    for a, b in zip(cpu, dev, strict=True):
        assert (a.error is None) == (b.error is None) and a.error == b.error, (a.layer, a.error, b.error)
        if a.alpha is not None:
            assert abs(a.alpha - b.alpha) <= 1e-9, (a.layer, a.alpha, b.alpha)
        for f in FLOATS:
            x, y = getattr(a, f), getattr(b, f)
            assert (x is None) == (y is None), (a.layer, f)
            if x is not None:
                assert y == pytest.approx(x, rel=1e-9, abs=1e-12), (a.layer, f)
        for f in ("N", "M", "n_tail", "num_evals", "n_traps", "weak_fit", "shape", "step"):
            assert getattr(a, f) == getattr(b, f), (a.layer, f)


@pytest.mark.parametrize("traps", [False, True])
def test_torch_path_matches_numpy_path(mixed, traps, monkeypatch):
    from grokwatch.checkpoints import read

    real = read.read_safetensors

    def faulty(fh, header, start, key, wide=False):  # one unreadable tensor: its file fails, named
        if "step_00000100" in fh.name and key == "fc2.weight":
            raise grokwatch.errors.CheckpointError(fh.name, f"cannot read {key} (planted)")
        return real(fh, header, start, key, wide)

    monkeypatch.setattr(read, "read_safetensors", faulty)
    s = Settings(traps=traps)
    cks, _ = discover(mixed)
    cpu = analyze_checkpoints(cks, s)
    cks, _ = discover(mixed)
    dev = [res for _, res in analyze_on_device(cks, s, "cpu")]
    _compare([r for res in cpu for r in res.records], [r for res in dev for r in res.records])
    assert [res.error for res in dev] == [res.error for res in cpu]  # the bad file, named, and only it
    assert sum(res.error is not None and "step_00000100" in res.error for res in dev) == 1
    assert any(r.error and "non-finite" in r.error for res in dev for r in res.records)
    assert sum(len(res.records) for res in dev) == 6 + 7 + 3


def test_batches_of_any_size_give_the_same_eigenvalues():
    rng = np.random.default_rng(1)
    mats = [rng.standard_t(3, size=s) for s in [(80, 40), (40, 80), (90, 40), (60, 30), (30, 30)]]
    for batch_bytes in (1, 40 * 40 * 8 * 2, 1 << 30):  # every Gram alone, pairs, all at once
        b = GramBatcher("cpu", batch_bytes)
        keys = [b.add(m) for m in mats]
        got = b.solve()
        for k, m in zip(keys, mats, strict=True):
            truth = np.linalg.svd(m, compute_uv=False) ** 2  # independent: singular values of W
            assert np.allclose(np.sort(got[k]), np.sort(truth), rtol=1e-12, atol=1e-10)
            assert np.allclose(got[k], gram_eigenvalues(m), rtol=1e-12, atol=1e-10)


def test_progress_ticks_once_per_layer(mixed):
    cks, _ = discover(mixed)
    totals, ticks = [], []

    def progress(n):
        totals.append(n)
        return lambda: ticks.append(1)

    out = list(analyze_on_device(cks, Settings(), "cpu", progress))
    n = sum(len(res.records) for _, res in out)
    assert totals == [n] and len(ticks) == n


def test_scan_on_device_shares_the_cache(mixed, monkeypatch):
    monkeypatch.setattr(device_mod, "resolve_device", lambda d: None if d == "cpu" else "cpu")
    monkeypatch.setattr("grokwatch.scan.resolve_device", device_mod.resolve_device)
    dev = grokwatch.scan_folder(mixed, workers=1, device="cuda")  # CPU torch standing in for the GPU
    cpu = grokwatch.scan_folder(mixed, workers=1, cache=False, device="cpu")
    _compare(cpu.records, dev.records)
    again = grokwatch.scan_folder(mixed, workers=1, device="cpu")
    assert again.computed == 0 and [r.to_dict() for r in again.records] == [r.to_dict() for r in dev.records]


def test_resolve_device(monkeypatch):
    assert device_mod.resolve_device("cpu") is None
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        device_mod.resolve_device("tpu")
    monkeypatch.setattr(device_mod, "cuda_possible", lambda: False)
    assert device_mod.resolve_device("auto") is None
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="--device cuda: .*use --device cpu"):
            device_mod.resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")
def test_cli_cuda_without_cuda_is_one_line_and_exit_2(tmp_path):
    root = write_run(tmp_path / "run")
    r = CliRunner().invoke(app, ["scan", str(root), "--device", "cuda"], env={"NO_COLOR": "1"})
    assert r.exit_code == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokwatch: error: --device cuda:"), r.stderr
    assert "Traceback" not in r.stderr and not (root / ".grokwatch-cache.sqlite").exists()


@pytest.mark.skipif(device_mod.cuda_possible(), reason="an NVIDIA driver is here: auto rightly asks torch")
def test_auto_does_not_import_torch_for_safetensors(tmp_path):
    root = write_run(tmp_path / "run")
    code = (
        "import sys; from grokwatch.cli import app\n"
        f"try: app(['scan', {str(root)!r}, '--device', 'auto', '-f', 'csv', '-j', '1'])\n"
        "except SystemExit as e: assert e.code in (0, None), e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stderr.strip().splitlines()[-1] == "NO-TORCH", p.stderr[-500:]
    assert "fc2.weight" in p.stdout
