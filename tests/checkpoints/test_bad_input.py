"""Bad or odd input: always one whole line naming the file and why, never silence, never a cut-off message."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import torch
from helpers import mlp_weights
from safetensors.numpy import save_file
from typer.testing import CliRunner

from grokwatch.cli import app
from grokwatch.scan import scan_folder

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


def lines(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x]


@pytest.fixture
def good(tmp_path):
    save_file(mlp_weights(np.random.default_rng(0)), str(tmp_path / "step_10.safetensors"))
    return tmp_path


def test_dangling_symlink_and_directory_named_like_a_checkpoint(good):
    os.symlink(good / "gone.safetensors", good / "step_20.safetensors")
    (good / "step_30.safetensors").mkdir()
    (good / "step_30.safetensors" / "readme.txt").write_text("not a model")
    r = invoke("scan", good, "--no-cache", "-j", 1, "-f", "json")
    assert r.exit_code == 3
    assert {x["step"] for x in json.loads(r.stdout)} == {10}  # the good one is still analysed
    errs = lines(r.stderr)
    assert len(errs) == 2, errs
    assert any(
        "step_20.safetensors: dangling symlink (points to" in e and "gone.safetensors" in e for e in errs
    )
    assert any("step_30.safetensors: is a directory, not a checkpoint file" in e for e in errs)


def test_unsupported_safetensors_dtypes_are_named(good):
    from safetensors.torch import save_file as save_pt

    w = {k: torch.from_numpy(v) for k, v in mlp_weights(np.random.default_rng(1)).items()}
    w["fp8.weight"] = torch.randn(32, 32).to(torch.float8_e4m3fn)
    w["ids"] = torch.arange(20)  # integer tensors are not weights: no line
    save_pt(w, str(good / "step_20.safetensors"))
    # a dtype no reader knows (a newer safetensors): header written by hand
    header = {"fc.weight": {"dtype": "X99", "shape": [20, 20], "data_offsets": [0, 400]}}
    blob = json.dumps(header).encode()
    (good / "step_30.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 400)
    res = scan_folder(good, workers=1, cache=False)
    assert res.errors == []
    assert sorted(res.warnings) == [
        f"{good / 'step_20.safetensors'}: skipped 1 tensor(s) of unsupported dtype F8_E4M3 (fp8.weight)",
        f"{good / 'step_30.safetensors'}: no analysable tensor (no floating-point weights found)",
        f"{good / 'step_30.safetensors'}: skipped 1 tensor(s) of unsupported dtype X99 (fc.weight)",
    ]
    assert {r.layer for r in res.records if r.step == 20} == {"fc1.weight", "fc2.weight", "fc3.weight"}


def test_no_analysable_tensor_is_one_line_and_exit_4_when_nothing_was(tmp_path):
    # an lpips-style head: 1 x C weights only
    save_file({"lin0.model.1.weight": np.ones((1, 64), np.float32)}, str(tmp_path / "lin.safetensors"))
    r = invoke("scan", tmp_path, "--no-cache", "-j", 1)
    assert r.exit_code == 4
    errs = lines(r.stderr)
    assert errs[0].endswith(
        "lin.safetensors: no analysable tensor (no 2-D tensor with both sides >= 10; largest 1x64)"
    )
    assert len(errs) == 2
    # beside a good checkpoint: the line stays, the exit is 0
    save_file(mlp_weights(np.random.default_rng(0)), str(tmp_path / "step_10.safetensors"))
    r = invoke("scan", tmp_path, "--no-cache", "-j", 1, "-f", "csv")
    assert r.exit_code == 0
    assert lines(r.stderr) == [
        f"grokwatch: warning: {tmp_path / 'lin.safetensors'}: no analysable tensor "
        "(no 2-D tensor with both sides >= 10; largest 1x64)"
    ]


def test_whole_pickled_model_says_how_to_fix_it(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(20, 20), torch.nn.ReLU(), torch.nn.Linear(20, 20))
    torch.save(m, tmp_path / "model.pt")
    res = scan_folder(tmp_path, workers=1, cache=False)
    assert res.errors == [
        f"{tmp_path / 'model.pt'}: unsafe pickle, not loaded (would import "
        "torch.nn.modules.activation.ReLU, torch.nn.modules.container.Sequential, "
        "torch.nn.modules.linear.Linear); a whole model saved with torch.save(model): "
        "re-save model.state_dict() instead"
    ]


@pytest.mark.parametrize(
    "payload",
    [os.urandom(4096), b"PK\x03\x04" + os.urandom(4096), b"", b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."],
    ids=["random", "zip-magic", "empty", "legacy-truncated"],
)
def test_random_bytes_are_corrupt_not_unsafe(tmp_path, payload):
    (tmp_path / "step_1.pt").write_bytes(payload)
    res = scan_folder(tmp_path, workers=1, cache=False)
    assert len(res.errors) == 1
    e = res.errors[0]
    assert e.startswith(f"{tmp_path / 'step_1.pt'}: corrupt or")
    assert "unsafe" not in e and "\n" not in e and "there is a high" not in e


def test_truncated_torch_archive_is_named_whole(tmp_path):
    torch.save(
        {k: torch.from_numpy(v) for k, v in mlp_weights(np.random.default_rng(0)).items()}, tmp_path / "a.pt"
    )
    data = (tmp_path / "a.pt").read_bytes()
    (tmp_path / "step_2.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "a.pt").unlink()
    res = scan_folder(tmp_path, workers=1, cache=False)
    assert len(res.errors) == 1 and "corrupt or" in res.errors[0] and "there is a high" not in res.errors[0]


def test_keras_files_are_named_not_skipped(good):
    (good / "model.keras").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (good / "model.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    res = scan_folder(good, workers=1, cache=False)
    assert sorted(res.errors) == [
        f"{good / 'model.keras'}: Keras file: recognised, not supported "
        "(export the weights to safetensors or torch)",
        f"{good / 'model.weights.h5'}: Keras file: recognised, not supported "
        "(export the weights to safetensors or torch)",
    ]
    assert [c.step for c in res.checkpoints] == [10]


def test_optimizer_shards_are_not_checkpoints(good):
    for name in (
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "optimizer.bin",
        "optimizer_0.pt",
    ):
        torch.save({"optimizer_state_dict": {"x": torch.zeros(30, 30)}}, good / name)
    res = scan_folder(good, workers=1, cache=False)
    assert res.errors == [] and [c.rel for c in res.checkpoints] == ["step_10.safetensors"]


def test_zero3_placeholders_point_to_zero_to_fp32(tmp_path):
    # the shape of DeepSpeed ZeRO-3's mp_rank_00_model_states.pt: 'module' holds 0-element tensors
    d = tmp_path / "global_step4"
    d.mkdir()
    torch.save(
        {"module": {"0.weight": torch.empty(0), "2.weight": torch.empty(0)}, "global_steps": 4},
        d / "mp_rank_00_model_states.pt",
    )
    r = invoke("scan", tmp_path, "--no-cache", "-j", 1)
    assert r.exit_code == 4
    errs = lines(r.stderr)
    assert any("2 parameter(s) are 0-element placeholders" in e and "zero_to_fp32" in e for e in errs), errs
    assert any("no analysable tensor" in e for e in errs)
