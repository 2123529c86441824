"""Discovery, formats, step parsing and layer naming."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from helpers import mlp_weights
from safetensors.numpy import save_file

from grokwatch.analyze import analyze_checkpoint, select
from grokwatch.checkpoints import clean_name, discover, step_from_name, tensor_refs
from grokwatch.errors import CheckpointError
from grokwatch.settings import Settings


def _torch_sd(rng, prefix=""):
    return {prefix + k: torch.from_numpy(v) for k, v in mlp_weights(rng).items()}


def test_step_from_name():
    assert step_from_name("step_00001000.safetensors") == 1000
    assert step_from_name("checkpoint-250") == 250
    assert step_from_name("epoch=3-step=1200.ckpt") == 1200
    assert step_from_name("ckpt_iter500.pt") == 500
    assert step_from_name("model.safetensors") is None


def test_clean_name():
    assert clean_name("_orig_mod.module.fc1.weight") == "fc1.weight"
    assert clean_name("module.encoder._orig_mod.fc.weight") == "encoder.fc.weight"


def test_every_format_and_numeric_order(tmp_path):
    rng = np.random.default_rng(0)
    save_file(mlp_weights(rng), str(tmp_path / "a.safetensors"), metadata={"step": "20"})
    save_file(mlp_weights(rng), str(tmp_path / "step_3.safetensors"))  # step from the name
    torch.save(_torch_sd(rng, "module."), tmp_path / "step_100.pt")
    torch.save({"iter_num": 7, "model": _torch_sd(rng, "_orig_mod.")}, tmp_path / "nanogpt.pth")
    torch.save({"global_step": 9, "state_dict": _torch_sd(rng)}, tmp_path / "last.ckpt")
    torch.save(_torch_sd(rng), tmp_path / "w_step_1000.bin")
    # sharded safetensors
    sh = tmp_path / "sharded_step_50"
    sh.mkdir()
    w = mlp_weights(rng)
    save_file(
        {"fc1.weight": w["fc1.weight"]}, str(sh / "model-00001-of-00002.safetensors"), metadata={"step": "50"}
    )
    save_file({"fc2.weight": w["fc2.weight"]}, str(sh / "model-00002-of-00002.safetensors"))
    (sh / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "weight_map": {
                    "fc1.weight": "model-00001-of-00002.safetensors",
                    "fc2.weight": "model-00002-of-00002.safetensors",
                }
            }
        )
    )
    # HF Trainer folder, with side files that hold no weights
    hf = tmp_path / "checkpoint-400"
    hf.mkdir()
    save_file(mlp_weights(rng), str(hf / "model.safetensors"))
    (hf / "trainer_state.json").write_text(json.dumps({"global_step": 400}))
    torch.save({"x": torch.zeros(3)}, hf / "optimizer.pt")
    torch.save({"x": torch.zeros(3)}, hf / "rng_state.pth")
    cks, bad = discover(tmp_path)
    assert bad == []
    fmts = {c.rel: c.format for c in cks}
    assert fmts["sharded_step_50/model.safetensors.index.json"] == "sharded"
    assert fmts["checkpoint-400"] == "safetensors"
    assert fmts["last.ckpt"] == "lightning"
    assert len(cks) == 8
    results = {c.rel: analyze_checkpoint(c, Settings()) for c in cks}
    steps = {r.rel: r.step for r in results.values()}
    assert steps == {
        "a.safetensors": 20,
        "step_3.safetensors": 3,
        "step_100.pt": 100,
        "nanogpt.pth": 7,
        "last.ckpt": 9,
        "w_step_1000.bin": 1000,
        "sharded_step_50/model.safetensors.index.json": 50,
        "checkpoint-400": 400,
    }
    for r in results.values():
        assert r.error is None
        layers = [x.layer for x in r.records]
        assert "fc1.weight" in layers and not any(x.startswith(("module.", "_orig_mod.")) for x in layers)
        assert "fc1.bias" not in layers  # 1-D tensors are skipped
    assert [x.layer for x in results["sharded_step_50/model.safetensors.index.json"].records] == [
        "fc1.weight",
        "fc2.weight",
    ]
    # a safetensors step beats the name; sorting is numeric, not lexical
    assert [c.step for c in cks[:2]] == [3, 20]


def test_same_numbers_from_torch_and_safetensors(tmp_path):
    rng = np.random.default_rng(1)
    w = mlp_weights(rng)
    save_file(w, str(tmp_path / "step_1.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in w.items()}, tmp_path / "step_2.pt")
    cks, _ = discover(tmp_path)
    a, b = (analyze_checkpoint(c, Settings()).records for c in cks)
    assert [r.alpha for r in a] == [r.alpha for r in b]


def test_layer_selection(tmp_path):
    rng = np.random.default_rng(2)
    w = mlp_weights(rng)
    w["tiny.weight"] = np.ones((5, 100), np.float32)  # smaller side < 10: skipped
    w["emb.weight"] = rng.normal(size=(100, 16)).astype(np.float32)
    save_file(w, str(tmp_path / "m.safetensors"))
    ck = discover(tmp_path)[0][0]
    refs = tensor_refs(ck)
    names = [r.layer for r in select(refs, Settings())]
    assert sorted(names) == ["emb.weight", "fc1.weight", "fc2.weight", "fc3.weight"]
    assert [r.layer for r in select(refs, Settings(layers=("fc*",)))] == [
        "fc1.weight",
        "fc2.weight",
        "fc3.weight",
    ]
    assert [r.layer for r in select(refs, Settings(exclude=("fc*", "emb*")))] == []


def test_bf16_safetensors(tmp_path):
    from safetensors.torch import save_file as save_pt

    rng = np.random.default_rng(3)
    W = torch.from_numpy(rng.normal(size=(40, 30)).astype(np.float32)).to(torch.bfloat16)
    save_pt({"fc.weight": W}, str(tmp_path / "b.safetensors"))
    ck = discover(tmp_path)[0][0]
    r = analyze_checkpoint(ck, Settings()).records[0]
    sv = np.linalg.svd(W.float().numpy().astype(np.float64), compute_uv=False)
    assert r.lambda_max == pytest.approx(sv[0] ** 2, rel=1e-9)


def test_unsafe_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"fc.weight": torch.zeros(20, 20), "x": Evil()}, tmp_path / "evil.pt")
    ck = discover(tmp_path)[0][0]
    with pytest.raises(CheckpointError, match=r"evil\.pt: unsafe pickle.*(posix|os)\.system"):
        tensor_refs(ck)
    assert not marker.exists()
