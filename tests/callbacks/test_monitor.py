"""`grokwatch.Monitor` in a hand-written PyTorch loop: same numbers as `scan` on the same weights,
labels over the history, stop_on, the cadence, and a training loop that is never blocked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from grokwatch import Monitor
from grokwatch.scan import scan_folder
from grokwatch.settings import PhaseRules, Settings


def _model(heavy: bool, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(200, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100))
    if heavy:
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            for lin in (m[0], m[2]):
                lin.weight.copy_(torch.from_numpy(rng.standard_t(1.5, size=tuple(lin.weight.shape))))
    return m


@pytest.mark.parametrize("background", [True, False])
def test_same_numbers_as_scan(tmp_path, background):
    model = _model(heavy=True)
    with Monitor(model, every=1, background=background) as mon:
        mon.step(1)
        mon.flush()
    res = mon.results[0]
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "step_1.safetensors")
    )
    scanned = scan_folder(tmp_path, Settings(traps=True), workers=1, cache=False)
    by_layer = {r.layer: r for r in scanned.records}
    assert set(res.alphas) == {"0.weight", "2.weight"}  # biases are not matrices
    for r in res.records:
        s = by_layer[r.layer]
        assert r.alpha == pytest.approx(s.alpha, rel=1e-6) and r.n_traps == s.n_traps
    assert res.phase == scanned.records[0].phase == "anti-grokking"
    assert res.level == "anti-grokking" and res.metrics()["grokwatch/phase"] == 2.0


def test_cadence_stop_on_and_history():
    model = _model(heavy=False)
    # weights swapped for heavy-tailed ones at step 9: a constructed jump, read one checkpoint at a time
    mon = Monitor(
        model, every=3, stop_on="anti-grokking", background=False, rules=PhaseRules(rule="threshold")
    )
    for _ in range(7):
        mon.step()
    assert [r.step for r in mon.results] == [3, 6]
    assert mon.results[0].level != "anti-grokking" and not mon.should_stop
    heavy = _model(heavy=True)
    model.load_state_dict(heavy.state_dict())
    mon.step(9)
    assert mon.should_stop and mon.stop_reason.step == 9
    assert len({r.checkpoint for r in mon.records}) == 3  # every analysed step is kept for the labels


def test_training_thread_continues_while_analysing():
    """The training loop goes on while the worker analyses; the result arrives later and is handed out once."""
    model = _model(heavy=True)
    mon = Monitor(model, every=1)
    got = mon.step(1)
    # whatever the machine speed: the call returned, later calls hand out the result exactly once
    got += mon.flush()
    got += mon.step(1)  # same step again: no second snapshot
    assert [r.step for r in got] == [1]
    mon.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="stop_on"):
        Monitor(None, stop_on="anti")
    with pytest.raises(ValueError, match="every"):
        Monitor(None, every=0)


def test_split_qkv_of_a_grouped_query_model_uses_its_config(tmp_path):
    """A live Phi-3 (8 query heads, 2 key/value heads) has no config.json beside its weights: the
    Monitor reads the head counts from `model.config`, so its Q, K, V are those a scan of the saved
    model (config.json beside it) gives, not one matrix kept whole."""
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    cfg = Phi3Config(
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=8,
        num_key_value_heads=2,
        num_hidden_layers=1,
        vocab_size=50,
        max_position_embeddings=32,
        pad_token_id=0,
    )
    model = Phi3ForCausalLM(cfg).eval()
    settings = Settings(split_qkv=True)
    with Monitor(model, every=1, background=False, settings=settings) as mon:
        mon.step(1)
    name = "model.layers.0.self_attn.qkv_proj.weight"
    live = {r.layer: r for r in mon.results[0].records}
    assert {f"{name}[{p}]" for p in "qkv"} <= set(live) and name not in live
    assert [live[f"{name}[{p}]"].shape for p in "qkv"] == [[64, 64], [16, 64], [16, 64]]
    model.save_pretrained(tmp_path / "phi3")
    scanned = {r.layer: r for r in scan_folder(tmp_path / "phi3", settings, workers=1, cache=False).records}
    for p in "qkv":
        assert live[f"{name}[{p}]"].alpha == pytest.approx(scanned[f"{name}[{p}]"].alpha, rel=1e-6)
