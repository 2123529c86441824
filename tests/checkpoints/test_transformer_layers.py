"""Fused QKV split and embedding selection, against the real libraries' own Q, K, V and module types.

Truth comes from the models themselves: the query/key/value states that Hugging Face's GPT-2 and
GPT-NeoX attention hand to their attention kernel (captured by wrapping it) and torch's packed
in-projection for nn.MultiheadAttention, each for an identity input, which makes the projection
matrix itself come out.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import grokwatch
from grokwatch.analyze import select
from grokwatch.checkpoints import TensorReader, discover, tensor_refs
from grokwatch.checkpoints.layers import is_embedding, split_qkv_refs
from grokwatch.settings import Settings

transformers = pytest.importorskip("transformers")

D, HEADS = 32, 4


def _capture(monkeypatch, module) -> dict:
    """Record the q, k, v states the model's attention passes to `eager_attention_forward`."""
    seen: dict = {}
    original = module.eager_attention_forward

    def spy(mod, query, key, value, *args, **kwargs):
        seen.update(q=query.detach(), k=key.detach(), v=value.detach())
        return original(mod, query, key, value, *args, **kwargs)

    monkeypatch.setattr(module, "eager_attention_forward", spy)
    return seen


def _as_matrix(states: torch.Tensor) -> np.ndarray:
    """(1, heads, t, d_head) states of t = D identity tokens -> the (D, D) map input -> output."""
    return states.transpose(1, 2).reshape(D, D).numpy()


def _parts(folder, settings=Settings(split_qkv=True)):
    ck = discover(folder)[0][0]
    notes: list[str] = []
    refs = tensor_refs(ck)
    from grokwatch.analyze import _heads

    chosen = select(refs, settings, _heads(ck, refs), notes)
    with TensorReader() as reader:
        return {r.layer: reader.read(r) for r in chosen}, notes


def test_gpt2_c_attn_conv1d_split_is_the_models_q_k_v(tmp_path, monkeypatch):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.models.gpt2 import modeling_gpt2

    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=D, n_head=HEADS, n_layer=1, vocab_size=40, n_positions=16)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).eval()
    attn = model.transformer.h[0].attn
    with torch.no_grad():
        attn.c_attn.bias.zero_()
    seen = _capture(monkeypatch, modeling_gpt2)
    with torch.no_grad():
        attn(torch.eye(D)[None])
    model.save_pretrained(tmp_path / "gpt2")
    parts, notes = _parts(tmp_path / "gpt2")
    name = "transformer.h.0.attn.c_attn.weight"
    assert attn.c_attn.weight.shape == (D, 3 * D)  # Conv1D: (in, 3 out), columns [Q | K | V]
    for p in "qkv":
        assert parts[f"{name}[{p}]"].shape == (D, D)
        np.testing.assert_array_equal(parts[f"{name}[{p}]"], _as_matrix(seen[p]))
    assert name not in parts and not notes
    whole, _ = _parts(tmp_path / "gpt2", Settings())
    assert whole[name].shape == (D, 3 * D)  # as stored, WeightWatcher's way
    assert not any(k.endswith("]") for k in whole)


def test_gpt_neox_query_key_value_per_head_split(tmp_path, monkeypatch):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    from transformers.models.gpt_neox import modeling_gpt_neox

    torch.manual_seed(1)
    cfg = GPTNeoXConfig(
        hidden_size=D, num_attention_heads=HEADS, num_hidden_layers=1, intermediate_size=64, vocab_size=40
    )
    cfg._attn_implementation = "eager"
    model = GPTNeoXForCausalLM(cfg).eval()
    attn = model.gpt_neox.layers[0].attention
    with torch.no_grad():
        attn.query_key_value.bias.zero_()
    seen = _capture(monkeypatch, modeling_gpt_neox)
    rot = attn.rotary_ndims
    cos, sin = torch.ones(1, D, rot), torch.zeros(1, D, rot)  # rotary off: q and k as projected
    with torch.no_grad():
        attn(torch.eye(D)[None], attention_mask=None, position_embeddings=(cos, sin))
    model.save_pretrained(tmp_path / "neox")
    parts, notes = _parts(tmp_path / "neox")
    name = "gpt_neox.layers.0.attention.query_key_value.weight"
    W = attn.query_key_value.weight.detach().numpy()
    for p in "qkv":
        truth = _as_matrix(seen[p]).T  # nn.Linear stores (out, in)
        np.testing.assert_array_equal(parts[f"{name}[{p}]"], truth)
    # the contiguous reading of this layout would be wrong: rows [:D] mix Q, K and V of heads 0-1
    assert not np.array_equal(W[:D], _as_matrix(seen["q"]).T)
    assert not notes
    (tmp_path / "neox" / "config.json").unlink()  # no head count: kept whole, with a note
    parts, notes = _parts(tmp_path / "neox")
    assert parts[name].shape == (3 * D, D) and len(notes) == 1 and "num_attention_heads" in notes[0]


def test_multihead_attention_in_proj_split(tmp_path):
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(D, HEADS, bias=False)
    eye = torch.eye(D)
    q, k, v = nn.functional._in_projection_packed(eye, eye, eye, mha.in_proj_weight)
    (tmp_path / "m").mkdir()
    save_file(
        {f"attn.{k_}": t.detach() for k_, t in mha.state_dict().items()},
        tmp_path / "m" / "step_1.safetensors",
    )
    parts, _ = _parts(tmp_path / "m")
    for p, truth in zip("qkv", (q, k, v), strict=True):
        np.testing.assert_array_equal(parts[f"attn.in_proj_weight[{p}]"], truth.detach().numpy().T)


def test_grouped_query_fused_matrix_is_kept_whole_with_a_note():
    from grokwatch.checkpoints import TensorRef

    refs = [TensorRef("m.qkv_proj.weight", "m.qkv_proj.weight", "f", (64 + 2 * 16, 64))]
    notes: list[str] = []
    assert split_qkv_refs(refs, None, notes) == refs and "not 3:1" in notes[0]


# Grouped-query / multi-query fused QKV: 8 query heads of 8 over a 64-wide model, 2 key/value heads.
GQ_D, GQ_HEADS, GQ_KV = 64, 8, 2


def _rows(states: torch.Tensor) -> np.ndarray:
    """(t, heads, d_head) states of t = GQ_D identity tokens -> the (heads * d_head, GQ_D) weight rows."""
    return states.reshape(GQ_D, -1).T.numpy()


def _phi3(tmp_path, monkeypatch):
    from transformers import Phi3Config, Phi3ForCausalLM
    from transformers.models.phi3 import modeling_phi3

    torch.manual_seed(5)
    cfg = Phi3Config(
        hidden_size=GQ_D,
        num_attention_heads=GQ_HEADS,
        num_key_value_heads=GQ_KV,
        num_hidden_layers=1,
        intermediate_size=64,
        vocab_size=40,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    cfg._attn_implementation = "eager"
    model = Phi3ForCausalLM(cfg).eval()
    attn = model.model.layers[0].self_attn
    seen = _capture(monkeypatch, modeling_phi3)  # key/value before repeat_kv: GQ_KV heads
    hd = GQ_D // GQ_HEADS
    cos, sin = torch.ones(1, GQ_D, hd), torch.zeros(1, GQ_D, hd)  # rotary off: q and k as projected
    with torch.no_grad():
        attn(torch.eye(GQ_D)[None], position_embeddings=(cos, sin), attention_mask=None)
    truth = {p: _rows(seen[p][0].transpose(0, 1)) for p in "qkv"}
    model.save_pretrained(tmp_path / "phi3")
    return attn.qkv_proj.weight.detach().numpy(), truth


def test_phi3_grouped_query_qkv_proj_split_is_the_models_q_k_v(tmp_path, monkeypatch):
    W, truth = _phi3(tmp_path, monkeypatch)
    hd = GQ_D // GQ_HEADS
    assert W.shape == ((GQ_HEADS + 2 * GQ_KV) * hd, GQ_D)  # not 3:1
    assert truth["q"].shape == (GQ_D, GQ_D) and truth["k"].shape == (GQ_KV * hd, GQ_D)
    parts, notes = _parts(tmp_path / "phi3")
    name = "model.layers.0.self_attn.qkv_proj.weight"
    assert not notes and name not in parts
    for p in "qkv":
        np.testing.assert_array_equal(parts[f"{name}[{p}]"], truth[p])
    np.testing.assert_array_equal(W[GQ_D : GQ_D + GQ_KV * hd], truth["k"])  # the truth is the real rows
    assert not np.array_equal(W[GQ_D - 1 : GQ_D - 1 + GQ_KV * hd], truth["k"])  # one row off is not
    # the scan's records: the parts' spectra, names and where they came from
    got = grokwatch.scan_folder(tmp_path / "phi3", Settings(split_qkv=True), workers=1, cache=False)
    by_name = {r.layer: r for r in got.records}
    k = by_name[f"{name}[k]"]
    assert k.shape == [GQ_KV * hd, GQ_D]
    assert k.extra["qkv_part"] == {
        "key": name,
        "part": "k",
        "per_head": None,
        "sizes": [64, 16, 16],
        "kv_groups": None,
    }
    ref = grokwatch.analyze_matrix(truth["k"], layer=f"{name}[k]")
    assert k.alpha == pytest.approx(ref.alpha)
    assert name not in by_name


def test_phi3_wrong_or_missing_config_keeps_qkv_proj_whole_with_a_note(tmp_path, monkeypatch):
    import json

    W, _ = _phi3(tmp_path, monkeypatch)
    name = "model.layers.0.self_attn.qkv_proj.weight"
    path = tmp_path / "phi3" / "config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "num_key_value_heads": 4}))  # inconsistent with the tensor
    parts, notes = _parts(tmp_path / "phi3")
    assert parts[name].shape == W.shape and not any(k.startswith(name + "[") for k in parts)
    assert len(notes) == 1 and "do not match config.json" in notes[0] and name in notes[0]
    path.unlink()
    parts, notes = _parts(tmp_path / "phi3")
    assert parts[name].shape == W.shape and len(notes) == 1 and "no config.json" in notes[0]


def _falcon(tmp_path, name, **kw):
    from transformers import FalconConfig, FalconForCausalLM

    torch.manual_seed(6)
    cfg = FalconConfig(hidden_size=GQ_D, num_hidden_layers=1, vocab_size=40, **kw)
    model = FalconForCausalLM(cfg).eval()
    attn = model.transformer.h[0].self_attention
    with torch.no_grad():  # the model's own split of its fused output, for identity input (no bias)
        q, k, v = attn._split_heads(attn.query_key_value(torch.eye(GQ_D)[None]))
    model.save_pretrained(tmp_path / name)
    return attn.query_key_value.weight.detach().numpy(), q[0], k[0], v[0]


def test_falcon_new_decoder_architecture_grouped_split_is_the_models_q_k_v(tmp_path):
    W, q, k, v = _falcon(
        tmp_path, "falcon", num_attention_heads=GQ_HEADS, num_kv_heads=GQ_KV, new_decoder_architecture=True
    )
    hd, per = GQ_D // GQ_HEADS, GQ_HEADS // GQ_KV
    assert W.shape == ((GQ_HEADS + 2 * GQ_KV) * hd, GQ_D)
    # _split_heads broadcasts each group's key/value to its query heads: one copy per group is K, V
    assert k.shape == q.shape == (GQ_D, GQ_HEADS, hd)
    assert torch.equal(k[:, 0], k[:, per - 1]) and not torch.equal(k[:, 0], k[:, per])
    truth = {"q": _rows(q), "k": _rows(k[:, ::per]), "v": _rows(v[:, ::per])}
    parts, notes = _parts(tmp_path / "falcon")
    name = "transformer.h.0.self_attention.query_key_value.weight"
    assert not notes and name not in parts
    for p in "qkv":
        assert parts[f"{name}[{p}]"].shape == truth[p].shape
        np.testing.assert_array_equal(parts[f"{name}[{p}]"], truth[p])
    # the contiguous reading of this layout would be wrong: rows [:64] hold group 0's K and V
    assert not np.array_equal(W[:GQ_D], truth["q"])


def test_falcon_multi_query_split_is_the_models_q_k_v(tmp_path):
    heads = 4  # head dim 16: K and V are 16 x 64, above the 10-row minimum
    W, q, k, v = _falcon(tmp_path, "falcon", num_attention_heads=heads, multi_query=True)
    hd = GQ_D // heads
    assert W.shape == (GQ_D + 2 * hd, GQ_D) and k.shape == (GQ_D, 1, hd)
    truth = {"q": _rows(q), "k": _rows(k), "v": _rows(v)}
    parts, notes = _parts(tmp_path / "falcon")
    name = "transformer.h.0.self_attention.query_key_value.weight"
    assert not notes and name not in parts
    for p in "qkv":
        np.testing.assert_array_equal(parts[f"{name}[{p}]"], truth[p])


def test_falcon_query_key_value_without_its_layout_in_config_is_kept_whole(tmp_path):
    import json

    W, *_ = _falcon(
        tmp_path, "falcon", num_attention_heads=GQ_HEADS, num_kv_heads=GQ_KV, new_decoder_architecture=True
    )
    path = tmp_path / "falcon" / "config.json"
    cfg = json.loads(path.read_text())
    for key in ("model_type", "new_decoder_architecture", "multi_query"):
        cfg.pop(key)
    path.write_text(json.dumps(cfg))  # 8 query, 2 kv heads, but which interleave is unknown
    parts, notes = _parts(tmp_path / "falcon")
    name = "transformer.h.0.self_attention.query_key_value.weight"
    assert parts[name].shape == W.shape and len(notes) == 1 and "Falcon" in notes[0]


@pytest.mark.parametrize("multi_query", [True, False])
def test_gpt_bigcode_c_attn_split_is_the_models_q_k_v(tmp_path, monkeypatch, multi_query):
    """multi_query: contiguous [Q; K; V] with one key/value head. Without it c_attn is 3:1 like
    nanoGPT's, but its rows are per head [Q_h K_h V_h]: split in thirds, Q would mix heads' Q, K, V."""
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM
    from transformers.models.gpt_bigcode import modeling_gpt_bigcode

    torch.manual_seed(7)
    heads = 4  # head dim 16
    cfg = GPTBigCodeConfig(
        n_embd=GQ_D, n_head=heads, n_layer=1, vocab_size=40, n_positions=16, multi_query=multi_query
    )
    cfg._attn_implementation = "eager"
    model = GPTBigCodeForCausalLM(cfg).eval()
    attn = model.transformer.h[0].attn
    with torch.no_grad():
        attn.c_attn.bias.zero_()
    seen = _capture(monkeypatch, modeling_gpt_bigcode)
    with torch.no_grad():
        attn(torch.eye(GQ_D)[None])
    model.save_pretrained(tmp_path / "bigcode")
    W = attn.c_attn.weight.detach().numpy()  # an nn.Linear
    assert W.shape == ((GQ_D + 2 * GQ_D // heads, GQ_D) if multi_query else (3 * GQ_D, GQ_D))
    parts, notes = _parts(tmp_path / "bigcode")
    name = "transformer.h.0.attn.c_attn.weight"
    assert not notes and name not in parts
    for p in "qkv":
        np.testing.assert_array_equal(parts[f"{name}[{p}]"], _rows(seen[p][0].transpose(0, 1)))
    if not multi_query:
        assert not np.array_equal(parts[f"{name}[q]"], W[:GQ_D])  # the thirds are not Q
        # without config.json (a nanoGPT-style c_attn) the same matrix is read as contiguous thirds
        (tmp_path / "bigcode" / "config.json").unlink()
        parts, _ = _parts(tmp_path / "bigcode")
        np.testing.assert_array_equal(parts[f"{name}[q]"], W[:GQ_D])


def test_grouped_query_split_of_a_stored_in_out_matrix():
    """A (d, out) matrix (Conv1D-style) is split along its columns, with the same head counts."""
    from grokwatch.checkpoints import TensorRef
    from grokwatch.checkpoints.layers import AttentionHeads, part_matrix

    W = np.arange(64 * 96, dtype=float).reshape(64, 96)
    refs = [TensorRef("h.0.attn.c_attn.weight", "h.0.attn.c_attn.weight", "f", W.shape)]
    heads = AttentionHeads(heads=8, kv_heads=2, head_dim=8, hidden=64)
    parts = {r.part: part_matrix(W, r) for r in split_qkv_refs(refs, heads)}
    np.testing.assert_array_equal(parts["q"], W[:, :64])
    np.testing.assert_array_equal(parts["k"], W[:, 64:80])
    np.testing.assert_array_equal(parts["v"], W[:, 80:])


def _hf_models():
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    small = dict(vocab_size=40)
    yield GPT2LMHeadModel(GPT2Config(n_embd=D, n_head=HEADS, n_layer=1, n_positions=16, **small))
    yield GPTNeoXForCausalLM(
        GPTNeoXConfig(
            hidden_size=D, num_attention_heads=HEADS, num_hidden_layers=1, intermediate_size=64, **small
        )
    )
    yield LlamaForCausalLM(
        LlamaConfig(
            hidden_size=D, num_attention_heads=HEADS, num_hidden_layers=1, intermediate_size=64, **small
        )
    )


def test_embedding_names_match_the_module_types():
    """Every weight of real GPT-2 / GPT-NeoX / Llama models: an embedding by name iff it is an
    nn.Embedding or the model's output embedding (the unembedding)."""
    from grokwatch.train.transformer import ModularTransformer

    models = [*_hf_models(), ModularTransformer(23)]
    for model in models:
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else model.unembed
        checked = 0
        for name, mod in model.named_modules():
            if getattr(mod, "weight", None) is None or mod.weight.dim() != 2:
                continue
            truth = isinstance(mod, nn.Embedding) or mod is out
            assert is_embedding(f"{name}.weight") == truth, (type(model).__name__, name)
            checked += 1
        assert checked >= 4


def test_our_transformer_checkpoint_scanned_with_and_without_embeddings(tmp_path):
    from grokwatch.train.transformer import ModularTransformer

    torch.manual_seed(3)
    model = ModularTransformer(23, d_model=32, layers=1, heads=4, d_mlp=64)
    (tmp_path / "r").mkdir()
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "r" / "step_5.safetensors"
    )
    default = {
        r.layer: r.shape for r in grokwatch.scan_folder(tmp_path / "r", workers=1, cache=False).records
    }
    assert default == {
        "tok_embed.weight": [25, 32],  # pos_embed (4 x 32) is below the 10-row minimum
        "blocks.0.attn.qkv.weight": [96, 32],
        "blocks.0.attn.out.weight": [32, 32],
        "blocks.0.mlp.fc_in.weight": [64, 32],
        "blocks.0.mlp.fc_out.weight": [32, 64],
        "unembed.weight": [23, 32],
    }
    s = Settings(embeddings=False, split_qkv=True)
    got = grokwatch.scan_folder(tmp_path / "r", s, workers=1, cache=False)
    by_name = {r.layer: r for r in got.records}
    assert sorted(by_name) == [
        "blocks.0.attn.out.weight",
        "blocks.0.attn.qkv.weight[k]",
        "blocks.0.attn.qkv.weight[q]",
        "blocks.0.attn.qkv.weight[v]",
        "blocks.0.mlp.fc_in.weight",
        "blocks.0.mlp.fc_out.weight",
    ]
    # the split parts are the model's own Q, K, V weights: their spectra match analyze_matrix's
    q = model.blocks[0].attn.qkv.weight.detach()[:32]
    ref = grokwatch.analyze_matrix(q, layer="blocks.0.attn.qkv.weight[q]")
    rec = by_name["blocks.0.attn.qkv.weight[q]"]
    assert rec.alpha == pytest.approx(ref.alpha) and rec.shape == [32, 32]
    assert rec.extra["qkv_part"]["part"] == "q"


def test_scan_cli_split_qkv_and_no_embeddings(tmp_path):
    import json

    from typer.testing import CliRunner

    from grokwatch.cli import app
    from grokwatch.train.transformer import ModularTransformer

    torch.manual_seed(4)
    model = ModularTransformer(23, d_model=32, layers=1, heads=4, d_mlp=64)
    (tmp_path / "r").mkdir()
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "r" / "step_5.safetensors"
    )
    args = ["scan", str(tmp_path / "r"), "--format", "json", "-j", "1", "--no-cache"]
    plain = CliRunner().invoke(app, args)
    split = CliRunner().invoke(app, [*args, "--split-qkv", "--no-embeddings"])
    assert plain.exit_code == 0 and split.exit_code == 0, split.output
    a = {r["layer"] for r in json.loads(plain.stdout)}
    b = {r["layer"] for r in json.loads(split.stdout)}
    assert "blocks.0.attn.qkv.weight" in a and "tok_embed.weight" in a and "unembed.weight" in a
    assert {f"blocks.0.attn.qkv.weight[{p}]" for p in "qkv"} <= b
    assert not b & {"blocks.0.attn.qkv.weight", "tok_embed.weight", "unembed.weight"}
    table = CliRunner().invoke(app, [*args[:2], "-j", "1", "--no-cache", "--split-qkv"])
    assert table.exit_code == 0 and "α blocks.0.attn.qkv.weight[k]" in table.stdout  # not eaten as markup
