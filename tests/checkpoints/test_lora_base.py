"""`--base`: a peft adapter's layers analysed as the merged weight W + ΔW.

The truth is peft's own `merge_and_unload()` on the model that wrote the adapter: the weight
grokwatch builds from the two files must equal the merged weight, and its α must equal the α of
that merged matrix analysed directly.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from layouts import write_peft

from grokwatch import analyze_matrix
from grokwatch.checkpoints import TensorReader, discover, tensor_refs
from grokwatch.checkpoints.base_model import attach_base, load_base
from grokwatch.scan import scan_folder
from grokwatch.settings import Settings


def _merged(model) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in model.merge_and_unload().state_dict().items()}


@pytest.mark.parametrize("targets", [("c_attn", "c_fc"), ("attn.c_proj",)])
def test_adapter_with_base_equals_peft_merge(tmp_path, targets):
    """Non-square Conv1D layers (c_attn 32x96, c_fc 32x128) and a square one (attn.c_proj 32x32)."""
    pytest.importorskip("peft")
    lay, model = write_peft(tmp_path / "adapter", base=tmp_path / "base", targets=targets)
    merged = _merged(model)
    ck = discover(lay.root)[0][0]
    refs, unmatched = attach_base(tensor_refs(ck), load_base(tmp_path / "base"))
    assert unmatched == []
    lora = [r for r in refs if r.key_b]
    assert len(lora) == 2 * len(targets) and all(r.base_key for r in lora)  # two blocks
    with TensorReader() as reader:
        for r in lora:
            truth = merged[r.layer]
            got = reader.read(r)
            assert got.shape == truth.shape
            np.testing.assert_allclose(got, truth, rtol=1e-6, atol=1e-6)
            # the update alone is far from the merged weight: the base really was added
            delta = reader.read(dataclasses.replace(r, base_key=None))
            assert np.abs((delta.T if r.base_transposed else delta) - truth).max() > 0.01
    res = scan_folder(lay.root, Settings(base=str(tmp_path / "base"), min_side=10), workers=1, cache=False)
    by_layer = {r.layer: r for r in res.records}
    assert set(by_layer) == {r.layer for r in lora}
    for name, rec in by_layer.items():
        want = analyze_matrix(merged[name], Settings(min_side=10), layer=name)
        # peft merges in float32, grokwatch adds in float64: α agrees to float32 rounding (~1e-8)
        assert rec.alpha == pytest.approx(want.alpha, rel=1e-6)
        assert rec.extra["lora"]["delta"] == "W + scale * B @ A"
        assert f"model.safetensors:{name}" in rec.extra["lora"]["base"]


def test_base_changes_the_numbers_and_the_cache_key(tmp_path):
    pytest.importorskip("peft")
    lay, _ = write_peft(tmp_path / "adapter", base=tmp_path / "base")
    delta = scan_folder(lay.root, workers=1, cache=True)
    merged = scan_folder(lay.root, Settings(base=str(tmp_path / "base")), workers=1, cache=True)
    a = {r.layer: r.alpha for r in delta.records}
    b = {r.layer: r.alpha for r in merged.records}
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) > 1e-6 for k in a)
    assert Settings().cache_key() != Settings(base=str(tmp_path / "base")).cache_key()


def test_base_without_the_layer_says_so_and_keeps_delta(tmp_path):
    pytest.importorskip("peft")
    import torch
    from safetensors.torch import save_file

    lay, _ = write_peft(tmp_path / "adapter")
    other = tmp_path / "other.safetensors"
    save_file({"unrelated.weight": torch.randn(20, 20)}, other)
    res = scan_folder(lay.root, Settings(base=str(other)), workers=1, cache=False)
    assert all(r.extra["lora"]["delta"] == "scale * B @ A" for r in res.records)
    notes = [n for n in res.warnings if "no tensor of that name in --base" in n]
    assert len(notes) == len(res.records) == 4, res.warnings  # c_attn and c_fc of two blocks


def test_bad_base_is_one_line_exit_2(tmp_path):
    """The real CLI process: a wrong --base is a usage error, said once, before any checkpoint is read."""
    pytest.importorskip("peft")
    lay, _ = write_peft(tmp_path / "adapter")
    (tmp_path / "empty").mkdir()

    def scan(base):
        cmd = [sys.executable, "-m", "grokwatch", "scan", str(lay.root), "--base", str(base), "--no-cache"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    r = scan(tmp_path / "missing")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"grokwatch: error: --base {tmp_path / 'missing'}: no such file or folder"
    ]
    r = scan(tmp_path / "empty")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "expected one model checkpoint, found no model checkpoint" in r.stderr


def test_relative_base_is_resolved_where_it_was_given(tmp_path, monkeypatch):
    """A relative --base names a file in the folder it was typed in: a Dask worker, or a notebook
    that changes folder before it scans, must still find that base (and not a same-named one)."""
    pytest.importorskip("peft")
    lay, model = write_peft(tmp_path / "adapter", base=tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    settings = Settings(base="base")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "base").mkdir(parents=True)  # an empty folder of the same name: no base model in it
    monkeypatch.chdir(elsewhere)
    res = scan_folder(lay.root, settings, workers=1, cache=False)
    assert res.records and not res.errors
    assert all(r.extra["lora"]["delta"] == "W + scale * B @ A" for r in res.records)
