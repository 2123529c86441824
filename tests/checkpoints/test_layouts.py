"""Every checkpoint layout, as the real library writes it (see layouts.py): found, ordered, named, exit codes.

The corpus is written once per module into a temporary folder; each library is
optional (pytest.importorskip), so a checkout without the `test` extra skips
what it cannot build.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from layouts import (
    write_accelerate,
    write_dcp,
    write_hf_sharded,
    write_hf_trainer,
    write_lightning,
    write_nanogpt,
    write_peft,
    write_peft_trainer,
    write_tied_bin,
    write_timm,
    write_wrapped,
)
from typer.testing import CliRunner

from grokwatch.checkpoints import TensorReader, discover, tensor_refs
from grokwatch.cli import app
from grokwatch.scan import scan_folder

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


def check(layout, **kw):
    """scan the layout's folder: the checkpoints, in step order, with the expected layers."""
    res = scan_folder(layout.root, workers=1, cache=False, **kw)
    assert res.errors == []
    assert all("epoch" in w for w in res.warnings), res.warnings  # nothing else skipped
    assert [c.rel for c in res.checkpoints] == layout.rels
    assert [c.step for c in res.checkpoints] == layout.steps
    by_ck: dict[str, set[str]] = {}
    for r in res.records:
        by_ck.setdefault(r.checkpoint, set()).add(r.layer)
    for rel in layout.rels:
        assert layout.layers <= by_ck[rel], (rel, sorted(by_ck[rel]))
    # records follow the checkpoint order too (what report and the phase labeller read)
    assert [r.checkpoint for r in res.records] == sorted(
        (r.checkpoint for r in res.records), key=layout.rels.index
    )
    return res


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tmp_path_factory.mktemp("layouts")


def test_hf_trainer_checkpoints_and_final_model(corpus):
    pytest.importorskip("transformers")
    lay = write_hf_trainer(corpus / "hf")
    res = check(lay)
    # side files (optimizer.pt, rng_state.pth, scheduler.pt, training_args.bin) are not checkpoints
    assert len(res.checkpoints) == 3
    # one checkpoint-N/ folder scanned directly keeps its step
    one = scan_folder(lay.root / "checkpoint-2", workers=1, cache=False)
    assert [(c.rel, c.step) for c in one.checkpoints] == [("checkpoint-2", 2)]
    r = invoke("scan", lay.root / "checkpoint-4", "--no-cache", "-j", 1, "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert {x["step"] for x in json.loads(r.stdout)} == {4}


def test_sharded_safetensors_and_bin_are_one_checkpoint_each(corpus):
    pytest.importorskip("transformers")
    pytest.importorskip("huggingface_hub")
    st, bn = write_hf_sharded(corpus / "sharded")
    assert len(list(bn.root.glob("pytorch_model-*.bin"))) > 1  # really sharded
    assert len(list(st.root.glob("model-*.safetensors"))) > 1
    a, b = check(st), check(bn)
    # the same weights through both layouts give the same numbers
    fa = {r.layer: r.alpha for r in a.records}
    fb = {r.layer: r.alpha for r in b.records}
    assert fa.keys() <= fb.keys() and all(fa[k] == pytest.approx(fb[k], rel=1e-12) for k in fa)
    # both folders at once: two checkpoints, not eight half-models; steps from the folder names
    both = scan_folder(corpus / "sharded", workers=1, cache=False)
    assert [(c.rel, c.step) for c in both.checkpoints] == [
        ("safetensors_step_10/model.safetensors.index.json", 10),
        ("bin_step_20/pytorch_model.bin.index.json", 20),
    ]
    # pointing at the index works
    r = invoke("scan", bn.root / "pytorch_model.bin.index.json", "--no-cache", "-j", 1, "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert GPT2_SOME <= {x["layer"] for x in json.loads(r.stdout)}


GPT2_SOME = {"transformer.wte.weight", "transformer.h.0.attn.c_attn.weight"}


def test_tied_weights_analysed_once(corpus):
    pytest.importorskip("transformers")
    p = write_tied_bin(corpus / "tied")
    sd = torch.load(p, weights_only=True)
    assert sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr()  # tied on disk
    res = scan_folder(p, workers=1, cache=False)
    layers = [r.layer for r in res.records]
    assert "transformer.wte.weight" in layers and "lm_head.weight" not in layers
    wte = next(r for r in res.records if r.layer == "transformer.wte.weight")
    assert wte.extra["shared_with"] == ["lm_head.weight"]


def test_nanogpt_unnumbered_folders_sorted_by_iter_num(corpus):
    pytest.importorskip("transformers")
    lay = write_nanogpt(corpus / "nanogpt")
    check(lay)
    # from the cache too, and through report's timeline
    r1 = invoke("scan", lay.root, "-j", 1, "-f", "json")
    r2 = invoke("scan", lay.root, "-j", 1, "-f", "json")
    assert r1.exit_code == r2.exit_code == 0
    steps = [x["step"] for x in json.loads(r2.stdout)]
    assert steps == sorted(steps) and steps[0] == 250 and r1.stdout == r2.stdout
    rep = invoke("report", lay.root, "-j", 1)
    assert rep.exit_code == 0, rep.stderr
    assert "250 – 4,000" in rep.stdout or "250 - 4,000" in rep.stdout


def test_lightning(corpus):
    pytest.importorskip("lightning")
    check(write_lightning(corpus / "lightning"))


def test_accelerate_save_state(corpus):
    pytest.importorskip("accelerate")
    res = check(write_accelerate(corpus / "accelerate"))
    assert all(c.format == "safetensors" for c in res.checkpoints)  # optimizer.bin skipped


def test_distributed_checkpoint(corpus):
    lay = write_dcp(corpus / "dcp")
    res = check(lay)
    # the numbers equal those of the same weights saved plainly (a torch file written here)
    one = scan_folder(lay.root / "step_100", workers=1, cache=False)  # the folder itself
    assert [c.rel for c in one.checkpoints] == ["step_100"]
    from layouts import tiny_gpt2

    torch.save(tiny_gpt2().state_dict(), corpus / "plain.pt")
    plain = {r.layer: r.alpha for r in scan_folder(corpus / "plain.pt", workers=1, cache=False).records}
    plain["lm_head.weight"] = plain["transformer.wte.weight"]  # tied: one matrix in the torch file
    for r in res.records:
        assert r.alpha == pytest.approx(plain[r.layer.removeprefix("model.")], rel=1e-12)


def test_dcp_metadata_that_would_run_code_is_refused(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    write_dcp(tmp_path)
    with open(tmp_path / "step_100" / ".metadata", "wb") as fh:
        pickle.dump(Evil(), fh)
    res = scan_folder(tmp_path, workers=1, cache=False)
    assert [c.rel for c in res.checkpoints] == ["latest", "step_200"]
    assert len(res.errors) == 1 and "step_100/.metadata: unreadable or unsafe DCP metadata" in res.errors[0]
    assert "posix.system" in res.errors[0] or "os.system" in res.errors[0]
    assert not marker.exists()


def test_timm_checkpoint_saver_epochs(corpus):
    lay = write_timm(corpus / "timm")
    res = check(lay)
    assert {c.step_unit for c in res.checkpoints} == {"epoch"}
    assert res.warnings == [
        f"{lay.root}: 5 checkpoint(s) record an epoch and no step; their step is the epoch "
        "(checkpoint-0.pth.tar, checkpoint-1.pth.tar, model_best.pth.tar and 2 more)"
    ]
    assert all(r.extra.get("step_unit") == "epoch" for r in res.records)


def test_wrapper_keys(corpus):
    lay = write_wrapped(corpus / "wrapped")
    res = check(lay)
    src = {r.checkpoint: r.extra.get("source_key") for r in res.records}
    assert src == {"a.pt": "model_state", "b.pt": "payload.weights"}


def test_peft_adapter_is_analysed_as_delta_w(corpus):
    pytest.importorskip("peft")
    lay, model = write_peft(corpus / "peft")
    res = check(lay)
    assert not any("lora_" in r.layer for r in res.records)
    ck = discover(lay.root)[0][0]
    refs = {r.layer: r for r in tensor_refs(ck)}
    cfg = json.loads((lay.root / "adapter_config.json").read_text())
    with TensorReader() as reader:
        for name in lay.layers:
            module = model.get_submodule("base_model.model." + name.removesuffix(".weight"))
            truth = module.get_delta_weight("default").detach().double().numpy()  # peft's own ΔW
            ours = reader.read(refs[name])
            assert refs[name].scale == cfg["lora_alpha"] / cfg["r"]
            assert ours.shape in (truth.shape, truth.T.shape)
            got = ours if ours.shape == truth.shape and ours.shape != truth.T.shape else ours.T
            np.testing.assert_allclose(got, truth, rtol=1e-5, atol=1e-6)


def test_peft_low_rank_says_why(tmp_path):
    pytest.importorskip("peft")
    lay, _ = write_peft(tmp_path / "r2", r=2)
    r = invoke("scan", lay.root, "--no-cache", "-j", 1)
    assert r.exit_code == 4  # nothing at all analysable
    lines = [x for x in r.stderr.splitlines() if x]
    assert any(
        "adapter_model.safetensors: no analysable tensor (LoRA updates B·A of rank 2" in x for x in lines
    ), lines
    assert len(lines) == 2  # that line and the summary, nothing cut off


def test_peft_inside_trainer_checkpoints(corpus):
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    check(write_peft_trainer(corpus / "peft_trainer"))


def _deepspeed(out, stage: int) -> None:
    """DeepSpeed in its own process: it starts a gloo process group that must not outlive the test."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    code = f"import layouts, pathlib; layouts.write_deepspeed(pathlib.Path({str(out)!r}), {stage})"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(here), *sys.path]),
        "MASTER_PORT": str(29600 + stage),
    }
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]


@pytest.mark.slow
def test_deepspeed_zero2_and_zero3(tmp_path):
    pytest.importorskip("deepspeed")
    _deepspeed(tmp_path / "z2", 2)
    _deepspeed(tmp_path / "z3", 3)
    assert list((tmp_path / "z2").rglob("*_optim_states.pt"))  # the optimizer shard exists and is skipped
    z2 = scan_folder(tmp_path / "z2", workers=1, cache=False)
    assert z2.errors == [] and z2.warnings == []
    assert [(c.rel, c.step) for c in z2.checkpoints] == [("global_step2/mp_rank_00_model_states.pt", 2)]
    assert {r.layer for r in z2.records} == {"0.weight", "2.weight"}
    assert {r.extra.get("source_key") for r in z2.records} == {"module"}
    r = invoke("scan", tmp_path / "z3", "--no-cache", "-j", 1)
    assert r.exit_code == 4
    errs = [x for x in r.stderr.splitlines() if x]
    assert any("0-element placeholders" in x and "zero_to_fp32" in x for x in errs), errs
