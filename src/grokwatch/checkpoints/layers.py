"""Transformer tensors by name: embedding tables, and fused Q/K/V projections split into Q, K and V.

WeightWatcher analyses a fused QKV projection as stored (one 3d x d matrix) and includes
`nn.Embedding` layers (its LAYER_TYPES_SUPPORTED lists EMBEDDING; a tied or separate
unembedding is an `nn.Linear`, so it is analysed too). grokwatch does the same by default;
`Settings(embeddings=False)` leaves out the tables recognised by `is_embedding`, and
`Settings(split_qkv=True)` replaces each fused projection by three refs named
`<name>[q]`, `<name>[k]`, `<name>[v]` (d x d each; with grouped-query attention K and V are smaller).

Layouts (the part of the fused matrix that holds Q, K or V):
- contiguous, rows [Q; K; V]: nn.MultiheadAttention `in_proj_weight` (3d, d), nanoGPT's
  `c_attn` (an nn.Linear), timm/ours `qkv`, MPT `Wqkv`, Phi-3 `qkv_proj` when its sizes are equal;
- contiguous, columns [Q | K | V]: HF GPT-2's `c_attn`, a Conv1D stored (d, 3d);
  the axis that is three times the other is the one split;
- per head, rows [Q_h K_h V_h] for each head h: GPT-NeoX / Pythia / Bloom `query_key_value`,
  which needs the head count (`num_attention_heads` or `n_head` in config.json beside the file),
  and GPTBigCode's `c_attn` (an nn.Linear, (3d, d)) when config.json says model_type
  "gpt_bigcode" without multi_query.

Grouped-query and multi-query attention (fewer key/value heads than query heads, so the sides
are not 3:1) are split with the head counts of config.json (`config_attention`): nh query heads,
nkv key/value heads, head dim hd (`head_dim`, else hidden_size / nh), Q being nh*hd long and K, V
nkv*hd each:
- contiguous [Q; K; V] for the contiguous names above (rows, or columns of a stored (d, out)):
  Phi-3 `qkv_proj` (num_key_value_heads), GPTBigCode/StarCoder `c_attn` (multi_query: nkv = 1);
- `query_key_value` with Falcon's `multi_query` (nkv = 1): contiguous rows [Q; K; V];
- `query_key_value` with Falcon's `new_decoder_architecture` (nkv = num_kv_heads): rows
  [Q_g1 .. Q_g(nh/nkv) K_g V_g] for each key/value group g, gathered into Q, K and V.
A fused matrix that is not 3:1 and whose sides do not match config.json (or that has no config.json,
or a `query_key_value` whose config names neither Falcon layout) is analysed as stored, with a note
saying why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from grokwatch.checkpoints.names import TensorRef

__all__ = [
    "PARTS",
    "AttentionHeads",
    "attention_from_config",
    "config_attention",
    "config_heads",
    "fused_qkv_layout",
    "is_attention",
    "is_embedding",
    "needs_heads",
    "part_matrix",
    "split_qkv_refs",
]

PARTS = ("q", "k", "v")
_CONTIGUOUS = re.compile(r"(^|\.)(c_attn|qkv|Wqkv|qkv_proj)\.weight$|(^|\.)in_proj_weight$")
_PER_HEAD = re.compile(r"(^|\.)query_key_value\.weight$")
_C_ATTN = re.compile(r"(^|\.)c_attn\.weight$")
# The module name (the part before `.weight`) of token, position and output tables:
# ours (tok_embed, pos_embed, unembed, embed), GPT-2 (wte, wpe, lm_head), Llama/Mistral
# (embed_tokens, lm_head), BERT (word_/position_/token_type_embeddings), GPT-NeoX (embed_in,
# embed_out), OPT (embed_positions), T5 (shared), Meta Llama (tok_embeddings).
_EMBED_MODULE = re.compile(r"(?i)(^|\.)([^.]*embed[^.]*|wte|wpe|lm_head|shared)\.weight$")


# A path component naming an attention module or projection: ours (attn.qkv, attn.out), torch
# MultiheadAttention (in_proj_weight, out_proj), GPT-2 (attn.c_attn, attn.c_proj), Llama/Mistral
# (self_attn.q_proj ... o_proj), BERT (attention.self.query/key/value), GPT-NeoX (attention.
# query_key_value, attention.dense), timm ViT (attn.qkv, attn.proj), --split-qkv parts ([q], [k], [v]).
_ATTENTION = re.compile(
    r"(?i)(^|[._])(attn|attention|self_attn|c_attn|in_proj_weight|query_key_value|[qkvo]_proj|wqkv|"
    r"query|key|value)([._\[]|$)|\[[qkv]\]$"
)


def is_attention(name: str) -> bool:
    """True for a layer of an attention block, judged by its name (the model is then a transformer).

    is_attention("blocks.0.attn.qkv.weight") and is_attention("model.layers.0.self_attn.q_proj.weight")  # True
    is_attention("fc1.weight") or is_attention("h.0.mlp.c_fc.weight")                                     # False
    """
    return bool(_ATTENTION.search(name))


def is_embedding(name: str) -> bool:
    """True for an embedding or unembedding table, judged by its module name.

    is_embedding("transformer.wte.weight") and is_embedding("lm_head.weight")   # True
    is_embedding("h.0.attn.c_attn.weight")                                       # False
    """
    return bool(_EMBED_MODULE.search(name))


def fused_qkv_layout(name: str) -> str | None:
    """ "contiguous", "per_head" or None (not a fused QKV projection), from the tensor's name."""
    if _PER_HEAD.search(name):
        return "per_head"
    if _CONTIGUOUS.search(name):
        return "contiguous"
    return None


@dataclass(frozen=True)
class AttentionHeads:
    """The head counts of a Hugging Face config.json, what splits a grouped-query fused QKV."""

    heads: int  # query heads
    kv_heads: int  # key/value heads: `heads` for plain multi-head attention, 1 for multi-query
    head_dim: int | None  # `head_dim`, else hidden_size / heads; None when neither is known
    hidden: int | None  # hidden_size: the input side of the projection, when config.json says
    # How a `query_key_value` with kv_heads < heads lays out its rows (Falcon): "contiguous"
    # (multi_query), "grouped" (new_decoder_architecture), None when the config says neither.
    kv_layout: str | None = None
    # A 3:1 `c_attn` nn.Linear whose rows are per head [Q_h K_h V_h], not [Q; K; V]: GPTBigCode
    # without multi_query (its attention views the output as (heads, 3 x head_dim)).
    per_head_c_attn: bool = False


def _read_config(folder: Path) -> dict | None:
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _first_int(cfg: dict, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        v = cfg.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def config_heads(folder: Path) -> int | None:
    """The attention head count from a Hugging Face config.json in `folder`, if there is one."""
    cfg = _read_config(folder)
    return None if cfg is None else _first_int(cfg, ("num_attention_heads", "n_head", "n_heads"))


def config_attention(folder: Path) -> AttentionHeads | None:
    """Query and key/value head counts and head dim from the config.json in `folder`, if it has them.

    Keys read: num_attention_heads / n_head / n_heads; num_key_value_heads / num_kv_heads /
    n_head_kv (absent: as many as query heads); Falcon's and GPTBigCode's `multi_query: true`
    (one key/value head; Falcon's default when model_type is "falcon"), overridden by Falcon's
    `new_decoder_architecture` (num_kv_heads groups); head_dim, else hidden_size / n_embd / d_model
    divided by the head count. Mirrors transformers' FalconAttention, Phi3Attention and
    GPTBigCodeAttention.
    """
    cfg = _read_config(folder)
    return None if cfg is None else attention_from_config(cfg)


def attention_from_config(cfg: dict) -> AttentionHeads | None:
    """`config_attention` of a config already in memory (a live model's `model.config.to_dict()`)."""
    heads = _first_int(cfg, ("num_attention_heads", "n_head", "n_heads"))
    if heads is None:
        return None
    falcon = cfg.get("model_type") == "falcon"
    new_decoder = cfg.get("new_decoder_architecture", False if falcon else None) is True
    multi_query = cfg.get("multi_query", True if falcon else None) is True
    kv_keys = ("num_key_value_heads", "num_kv_heads", "n_head_kv")
    if new_decoder:
        kv, kv_layout = _first_int(cfg, kv_keys) or heads, "grouped"
    elif multi_query:
        kv, kv_layout = 1, "contiguous"
    else:
        kv, kv_layout = _first_int(cfg, kv_keys) or heads, None
    hidden = _first_int(cfg, ("hidden_size", "n_embd", "d_model"))
    head_dim = None if falcon else _first_int(cfg, ("head_dim",))  # Falcon: always hidden / heads
    if head_dim is None and hidden is not None and hidden % heads == 0:
        head_dim = hidden // heads
    per_head_c_attn = cfg.get("model_type") == "gpt_bigcode" and not multi_query
    return AttentionHeads(heads, kv, head_dim, hidden, kv_layout, per_head_c_attn)


def needs_heads(refs: list[TensorRef]) -> bool:
    """True when a fused QKV ref can only be split with config.json's head counts (per-head or
    grouped-query layout), so a caller reads config.json only then."""
    for r in refs:
        layout = fused_qkv_layout(r.key)
        if layout is None or len(r.shape) != 2 or r.key_b:
            continue
        rows, cols = r.shape
        if layout == "per_head" or (rows != 3 * cols and cols != 3 * rows):
            return True
        if rows == 3 * cols and _C_ATTN.search(r.key):  # an nn.Linear c_attn: GPTBigCode's is per head
            return True
    return False


def _grouped_query(
    layout: str, rows: int, cols: int, a: AttentionHeads | None
) -> tuple[int, tuple[int, int, int], int] | str:
    """(axis, (q, k, v) lengths, kv groups or 0) of a fused matrix that is not 3:1, or why it cannot
    be split: its sides must be exactly what config.json's head counts make."""
    if a is None:
        return f"sides {rows}x{cols} are not 3:1 and there is no config.json with head counts beside it"
    nh, nkv, hd = a.heads, a.kv_heads, a.head_dim
    if hd is None:
        return f"sides {rows}x{cols} are not 3:1 and config.json gives neither head_dim nor hidden_size"
    if nkv >= nh or nh % nkv:
        return (
            f"sides {rows}x{cols} are not 3:1 and config.json's {nh} query and {nkv} key/value heads "
            "are not grouped-query attention"
        )
    if layout == "per_head" and a.kv_layout is None:
        return (
            f"sides {rows}x{cols} are not 3:1 and config.json names neither of Falcon's layouts "
            "(multi_query, new_decoder_architecture)"
        )
    sizes = (nh * hd, nkv * hd, nkv * hd)
    total = sum(sizes)
    for axis in (0,) if layout == "per_head" else (0, 1):
        fused, other = (rows, cols) if axis == 0 else (cols, rows)
        if fused == total and (a.hidden is None or other == a.hidden):
            if layout == "per_head" and a.kv_layout == "grouped":
                return axis, (nh // nkv * hd, hd, hd), nkv
            return axis, sizes, 0
    return (
        f"sides {rows}x{cols} do not match config.json: {nh} query + 2 x {nkv} key/value heads "
        f"of {hd} make {total}" + (f" x hidden_size {a.hidden}" if a.hidden else " rows")
    )


def split_qkv_refs(
    refs: list[TensorRef], heads: int | AttentionHeads | None, notes: list[str] | None = None
) -> list[TensorRef]:
    """Each fused QKV ref replaced by its three parts, in place in the list; others unchanged.

    `heads` (a head count, or `config_attention`'s head counts) is only needed for the per-head
    layout and for grouped-query attention; a matrix that cannot be split is kept whole and a
    line saying why is appended to `notes`.
    """
    counts = heads if isinstance(heads, AttentionHeads) else None
    n_heads = counts.heads if counts else heads
    out: list[TensorRef] = []
    for r in refs:
        layout = fused_qkv_layout(r.key)
        if layout is None or len(r.shape) != 2 or r.key_b:
            out.append(r)
            continue
        rows, cols = r.shape
        axis = 0 if rows == 3 * cols else 1 if cols == 3 * rows else None
        if axis == 0 and counts is not None and counts.per_head_c_attn and _C_ATTN.search(r.key):
            layout = "per_head"  # GPTBigCode without multi_query: rows [Q_h K_h V_h] per head
        why = None
        if axis is None:
            plan = _grouped_query(layout, rows, cols, counts)
            if isinstance(plan, str):
                why = plan
            else:
                axis, sizes, groups = plan
                for p, size in zip(PARTS, sizes if groups == 0 else [groups * n for n in sizes], strict=True):
                    shape = (size, cols) if axis == 0 else (rows, size)
                    out.append(
                        replace(
                            r,
                            layer=f"{r.layer}[{p}]",
                            shape=shape,
                            part=p,
                            part_axis=axis,
                            part_sizes=sizes,
                            part_groups=groups,
                        )
                    )
                continue
        elif layout == "per_head" and (axis != 0 or not n_heads or rows % (3 * n_heads)):
            why = (
                "its per-head layout needs num_attention_heads in config.json"
                if not n_heads
                else (f"{rows} rows do not hold 3 x {n_heads} heads")
            )
        if why:
            if notes is not None:
                notes.append(f"{r.layer}: fused QKV analysed as stored, not split: {why}")
            out.append(r)
            continue
        n = min(rows, cols)
        per_head = n_heads if layout == "per_head" else 0
        shape = (n, cols) if axis == 0 else (rows, n)
        out.extend(
            replace(r, layer=f"{r.layer}[{p}]", shape=shape, part=p, part_axis=axis, part_heads=per_head)
            for p in PARTS
        )
    return out


def part_matrix(W, ref: TensorRef):
    """The Q, K or V block of a fused matrix `W` (numpy array or torch tensor) as `ref` describes it."""
    if not ref.part:
        return W
    i = PARTS.index(ref.part)
    groups = ref.part_heads or ref.part_groups
    if groups:  # rows are (head or kv group, [q k v], ...): gathered from every group
        rows, cols = W.shape
        sizes = ref.part_sizes or (rows // (3 * groups),) * 3
        start = sum(sizes[:i])
        block = W.reshape(groups, rows // groups, cols)[:, start : start + sizes[i]]
        return block.reshape(groups * sizes[i], cols)
    sizes = ref.part_sizes or (W.shape[ref.part_axis] // 3,) * 3
    start, stop = sum(sizes[:i]), sum(sizes[: i + 1])
    return W[start:stop] if ref.part_axis == 0 else W[:, start:stop]
