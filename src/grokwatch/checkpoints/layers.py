"""Transformer tensors by name: embedding tables, and fused Q/K/V projections split into Q, K and V.

WeightWatcher analyses a fused QKV projection as stored (one 3d x d matrix) and includes
`nn.Embedding` layers (its LAYER_TYPES_SUPPORTED lists EMBEDDING; a tied or separate
unembedding is an `nn.Linear`, so it is analysed too). grokwatch does the same by default;
`Settings(embeddings=False)` leaves out the tables recognised by `is_embedding`, and
`Settings(split_qkv=True)` replaces each fused projection by three d x d refs named
`<name>[q]`, `<name>[k]`, `<name>[v]`.

Layouts (the part of the fused matrix that holds Q, K or V):
- contiguous, rows [Q; K; V]: nn.MultiheadAttention `in_proj_weight` (3d, d), nanoGPT's
  `c_attn` (an nn.Linear), timm/ours `qkv`, MPT `Wqkv`, Phi-3 `qkv_proj` when its sizes are equal;
- contiguous, columns [Q | K | V]: HF GPT-2's `c_attn`, a Conv1D stored (d, 3d);
  the axis that is three times the other is the one split;
- per head, rows [Q_h K_h V_h] for each head h: GPT-NeoX / Pythia / Bloom `query_key_value`,
  which needs the head count (`num_attention_heads` or `n_head` in config.json beside the file).

A fused matrix whose sides are not 3:1 (grouped-query attention) is analysed as stored,
with a note saying why.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from grokwatch.checkpoints.names import TensorRef

__all__ = [
    "PARTS",
    "config_heads",
    "fused_qkv_layout",
    "is_attention",
    "is_embedding",
    "part_matrix",
    "split_qkv_refs",
]

PARTS = ("q", "k", "v")
_CONTIGUOUS = re.compile(r"(^|\.)(c_attn|qkv|Wqkv|qkv_proj)\.weight$|(^|\.)in_proj_weight$")
_PER_HEAD = re.compile(r"(^|\.)query_key_value\.weight$")
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


def config_heads(folder: Path) -> int | None:
    """The attention head count from a Hugging Face config.json in `folder`, if there is one."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for key in ("num_attention_heads", "n_head", "n_heads"):
        if isinstance(cfg.get(key), int) and cfg[key] > 0:
            return cfg[key]
    return None


def split_qkv_refs(
    refs: list[TensorRef], heads: int | None, notes: list[str] | None = None
) -> list[TensorRef]:
    """Each fused QKV ref replaced by its three parts, in place in the list; others unchanged.

    `heads` is only needed for the per-head layout; a matrix that cannot be split is kept
    whole and a line saying why is appended to `notes`.
    """
    out: list[TensorRef] = []
    for r in refs:
        layout = fused_qkv_layout(r.key)
        if layout is None or len(r.shape) != 2 or r.key_b:
            out.append(r)
            continue
        rows, cols = r.shape
        axis = 0 if rows == 3 * cols else 1 if cols == 3 * rows else None
        why = None
        if axis is None:
            why = f"sides {rows}x{cols} are not 3:1 (grouped-query attention?)"
        elif layout == "per_head" and (axis != 0 or not heads or rows % (3 * heads)):
            why = (
                "its per-head layout needs num_attention_heads in config.json"
                if not heads
                else (f"{rows} rows do not hold 3 x {heads} heads")
            )
        if why:
            if notes is not None:
                notes.append(f"{r.layer}: fused QKV analysed as stored, not split: {why}")
            out.append(r)
            continue
        n = min(rows, cols)
        per_head = heads if layout == "per_head" else 0
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
    if ref.part_heads:  # rows are (head, [q k v], head_dim)
        h = ref.part_heads
        rows, cols = W.shape
        return W.reshape(h, 3, rows // (3 * h), cols)[:, i].reshape(rows // 3, cols)
    n = W.shape[ref.part_axis] // 3
    return W[i * n : (i + 1) * n] if ref.part_axis == 0 else W[:, i * n : (i + 1) * n]
