"""Per-layer splitting: records identical (bitwise, same order) to per-checkpoint work for any -j,
bad files named while the rest goes on, one progress tick per layer, large layers read as float64
without changing a value."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from helpers import llama_block, write_run
from safetensors.torch import save_file as save_torch

import grokwatch
import grokwatch.pool as pool
from grokwatch.checkpoints import safetensors_file
from grokwatch.settings import Settings
from grokwatch.split import layer_flops, should_split

esd_mod = importlib.import_module("grokwatch.spectral.esd")  # the package re-exports a function named esd


@pytest.fixture
def mixed(tmp_path):
    """Three MLP checkpoints, a sharded bf16 block and a torch file: every reader the split path uses."""
    root = write_run(tmp_path / "run")
    llama_block(root / "checkpoint-2000")
    rng = np.random.default_rng(5)
    torch.save(
        {
            "model": {"fc.weight": torch.from_numpy(rng.normal(size=(60, 90)).astype(np.float32))},
            "step": 3000,
        },
        root / "extra_step_3000.pt",
    )
    return root


def _dicts(res):
    return [r.to_dict() for r in res.records]


@pytest.mark.parametrize("traps,on_demand", [(False, False), (True, False), (False, True)])
def test_split_records_identical_for_any_workers(mixed, monkeypatch, traps, on_demand):
    monkeypatch.setattr(pool, "POOL_START_S", 0.0)  # force a real pool even for tiny work
    monkeypatch.setattr("grokwatch.split.ON_DEMAND_FLOPS", 0.0 if on_demand else float("inf"))
    monkeypatch.setattr(pool, "TORCH_IMPORT_S", 0.0)
    s = Settings(traps=traps)
    whole = grokwatch.scan_folder(mixed, s, workers=1, cache=False, split=False)
    assert len(whole.records) == 3 * 3 + 7 + 1 and not whole.errors
    try:
        for workers in (1, 2, 3):
            pool.shutdown()
            got = grokwatch.scan_folder(mixed, s, workers=workers, cache=False, split=True)
            assert _dicts(got) == _dicts(whole), workers  # bitwise: floats compared with ==
            assert [c.rel for c in got.checkpoints] == [c.rel for c in whole.checkpoints]
    finally:
        pool.shutdown()


def test_split_gives_one_tick_per_layer(mixed):
    totals, ticks = [], []

    def progress(n):
        totals.append(n)
        return lambda: ticks.append(1)

    res = grokwatch.scan_folder(mixed, workers=1, cache=False, split=True, progress=progress)
    assert totals == [len(res.records)] and len(ticks) == len(res.records)


def test_split_bad_file_is_named_and_the_rest_goes_on(mixed, monkeypatch):
    shard = mixed / "checkpoint-2000" / "model-00002-of-00002.safetensors"
    raw = shard.read_bytes()
    # keep the header, lose the data: the header check names the shard before any tensor is read
    shard.write_bytes(raw[: len(raw) // 2])
    (mixed / "step_00005000.safetensors").write_bytes(b"not a safetensors file")
    whole = grokwatch.scan_folder(mixed, workers=1, cache=False, split=False)
    monkeypatch.setattr(pool, "POOL_START_S", 0.0)
    try:
        split = grokwatch.scan_folder(mixed, workers=2, cache=False, split=True)
    finally:
        pool.shutdown()
    assert split.errors == whole.errors and len(split.errors) == 2
    assert any(str(shard) in e for e in split.errors)
    assert _dicts(split) == _dicts(whole) and len(split.records) == 3 * 3 + 1


def test_unreadable_layer_fails_its_checkpoint_as_before(tmp_path, monkeypatch):
    """A tensor whose bytes cannot be read (here: a reader fault) fails the whole file in both paths."""
    root = write_run(tmp_path / "run")
    real = safetensors_file.read_safetensors

    def faulty(fh, header, start, key, wide=False):
        if "step_00000100" in fh.name and key == "fc2.weight":
            raise grokwatch.errors.CheckpointError(fh.name, f"cannot read {key} (planted)")
        return real(fh, header, start, key, wide)

    monkeypatch.setattr("grokwatch.checkpoints.read.read_safetensors", faulty)
    whole = grokwatch.scan_folder(root, workers=1, cache=False, split=False)
    split = grokwatch.scan_folder(root, workers=1, cache=False, split=True)
    assert whole.errors == split.errors and "fc2.weight (planted)" in split.errors[0]
    assert _dicts(whole) == _dicts(split) and len(split.records) == 6


def test_should_split(tmp_path):
    root = write_run(tmp_path / "run", steps=tuple(range(1, 21)))
    cks, _ = grokwatch.checkpoints.discover(root)
    assert not should_split(cks, 1)  # small files, one process: per checkpoint, as before
    assert not should_split(cks, 2)  # 20 checkpoints keep 2 processes busy
    assert should_split(cks[:3], 2)  # too few for 2 processes
    assert layer_flops((300, 100)) == 300 * 100**2 + 4 / 3 * 100**3
    assert layer_flops((100, 300, 3, 3)) == 9 * layer_flops((300, 100))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_wide_read_equals_the_exact_widening(tmp_path, monkeypatch, dtype):
    """float64 read in small chunks == torch's own widening of the same values."""
    monkeypatch.setattr(safetensors_file, "READ_CHUNK", 1000)  # many chunks, one ending mid-row
    t = torch.randn(37, 101).to(dtype)
    path = tmp_path / "w.safetensors"
    save_torch({"w": t}, str(path))
    header, start = safetensors_file.safetensors_header(path)
    with open(path, "rb") as fh:
        wide = safetensors_file.read_safetensors(fh, header, start, "w", wide=True)
        narrow = safetensors_file.read_safetensors(fh, header, start, "w")
    assert wide.dtype == np.float64 and wide.shape == (37, 101)
    assert np.array_equal(wide, t.double().numpy()) and np.array_equal(wide, narrow.astype(np.float64))


def test_float64_input_skips_the_copy_with_identical_eigenvalues(monkeypatch):
    monkeypatch.setattr(esd_mod, "SCRATCH_MAX", 0)  # every layer counts as large
    rng = np.random.default_rng(0)
    for shape in [(120, 80), (80, 120)]:
        W32 = rng.standard_t(2.5, size=shape).astype(np.float32)
        assert np.array_equal(esd_mod.esd(W32), esd_mod.esd(W32.astype(np.float64)))


@pytest.mark.parametrize("traps", [False, True])
def test_large_layers_in_a_scan_match_the_float32_read(tmp_path, monkeypatch, traps):
    """The wide read (taken above SCRATCH_MAX; without traps the weights are also freed before the
    eigensolve) leaves every record as the float32 read gives it, safetensors and torch files alike."""
    root = tmp_path / "run"
    llama_block(root / "checkpoint-1", d=40)
    rng = np.random.default_rng(2)
    sd = {
        "a.weight": torch.from_numpy(rng.standard_t(3, size=(90, 50)).astype(np.float32)).to(torch.bfloat16)
    }
    sd["b.weight"] = torch.from_numpy(rng.standard_t(3, size=(40, 70)).astype(np.float32))
    torch.save(sd, root / "step_2.pt")
    before = grokwatch.scan_folder(root, Settings(traps=traps), workers=1, cache=False)
    monkeypatch.setattr("grokwatch.analyze.SCRATCH_MAX", 0)
    monkeypatch.setattr(esd_mod, "SCRATCH_MAX", 0)
    monkeypatch.setattr("grokwatch.checkpoints.read.WIDEN_BYTES", 1000)  # many blocks, pages dropped
    after = grokwatch.scan_folder(root, Settings(traps=traps), workers=1, cache=False)
    assert _dicts(before) == _dicts(after) and len(after.records) == 9


def test_torch_wide_read_is_exact_and_rereadable(tmp_path, monkeypatch):
    """Dropping a memory-mapped file's pages after widening never changes what is read next."""
    from grokwatch.checkpoints import TensorReader, discover, tensor_refs

    monkeypatch.setattr("grokwatch.checkpoints.read.WIDEN_BYTES", 4096)
    t = torch.randn(300, 200).to(torch.bfloat16)
    torch.save({"w.weight": t, "v.weight": t * 2}, tmp_path / "m.pt")
    (ck,), _ = discover(tmp_path)
    refs = {r.layer: r for r in tensor_refs(ck)}
    with TensorReader() as reader:
        first = reader.read(refs["w.weight"], wide=True)
        other = reader.read(refs["v.weight"], wide=True)
        again = reader.read(refs["w.weight"], wide=True)
        narrow = reader.read(refs["w.weight"])
    assert np.array_equal(first, t.double().numpy()) and np.array_equal(again, first)
    assert np.array_equal(other, (t * 2).double().numpy()) and np.array_equal(narrow, first)
