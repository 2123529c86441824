"""A small decoder-only transformer for modular arithmetic (Power et al. 2022, Nanda et al. 2023).

The sequence is `a op b =` (four tokens: the p numbers, then `op` = token p and `=` = token
p + 1) and the answer is read at the `=` position only, so the model is a classifier over the
p answers like the MLP and shares the loop's loss and evaluation. Written with
`F.scaled_dot_product_attention` (causal), no dependency beyond torch.

Why these module names: the checkpoint keys are what `grokwatch scan` shows, so they are kept
short and recognisable, `tok_embed.weight`, `pos_embed.weight`, `blocks.0.attn.qkv.weight`
(Q, K and V fused as one (3d, d) matrix, rows [Q; K; V], like timm's `qkv`: `scan --split-qkv`
analyses it as three d x d matrices), `blocks.0.attn.out.weight`, `blocks.0.mlp.fc_in.weight`,
`blocks.0.mlp.fc_out.weight`, `unembed.weight`.

Choices, from openai/grok's model where the paper is silent: post-LayerNorm blocks
(x = LN(x + attn(x)); x = LN(x + mlp(x))), ReLU MLP of width d_mlp (4 d), no biases, no final
LayerNorm, default PyTorch init. Differences, stated: positions are a learned (4, d) table
(openai/grok adds fixed sinusoids), and the unembedding has p outputs (the answers) rather than
the whole vocabulary. `layer_norm=False` drops both LayerNorms and scales the embedding tables to
N(0, 1/d) as Nanda et al. do (their 1-layer model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "Block", "FeedForward", "ModularTransformer"]

SEQ_LEN = 4  # a op b =


class Attention(nn.Module):
    """Causal multi-head self-attention with one fused (3d, d) QKV projection, rows [Q; K; V]."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"width {d_model} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """`last_only`: the output at the last position only (it attends to every position)."""
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if last_only:
            q = q[:, :, -1:]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=not last_only)  # (n, heads, t, d_head)
        return self.out(y.transpose(1, 2).reshape(n, q.shape[2], d))


class FeedForward(nn.Module):
    """d -> d_mlp -> d with ReLU."""

    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_mlp, bias=False)
        self.fc_out = nn.Linear(d_mlp, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(torch.relu(self.fc_in(x)))


class Block(nn.Module):
    """Post-LN residual block (openai/grok's DecoderBlock); identity norms when `layer_norm` is off."""

    def __init__(self, d_model: int, heads: int, d_mlp: int, layer_norm: bool = True):
        super().__init__()
        self.attn = Attention(d_model, heads)
        self.mlp = FeedForward(d_model, d_mlp)
        self.ln1 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.ln2 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """`last_only`: return the last position only (the last block: ~1/3 less work there)."""
        x = self.ln1((x[:, -1:] if last_only else x) + self.attn(x, last_only))
        return self.ln2(x + self.mlp(x))


class ModularTransformer(nn.Module):
    """Input (n, 2) pairs (a, b); output (n, p) logits for (a op b) mod p read at the `=` token.

    model = ModularTransformer(p=97)              # Power et al.: 2 layers, d 128, 4 heads
    model(torch.tensor([[3, 5]])).shape           # torch.Size([1, 97])
    """

    def __init__(
        self,
        p: int,
        d_model: int = 128,
        layers: int = 2,
        heads: int = 4,
        d_mlp: int = 512,
        layer_norm: bool = True,
    ):
        super().__init__()
        self.p = p
        self.tok_embed = nn.Embedding(p + 2, d_model)
        self.pos_embed = nn.Embedding(SEQ_LEN, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, d_mlp, layer_norm) for _ in range(layers))
        self.unembed = nn.Linear(d_model, p, bias=False)
        if not layer_norm:  # Nanda et al.'s init: without LayerNorm an N(0, 1) table swamps the blocks
            with torch.no_grad():
                self.tok_embed.weight.div_(d_model**0.5)
                self.pos_embed.weight.div_(d_model**0.5)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 2) pairs -> (n, 4) token ids `a op b =`."""
        a, b = x[:, 0], x[:, 1]
        return torch.stack([a, torch.full_like(a, self.p), b, torch.full_like(a, self.p + 1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tok_embed(self.tokens(x)) + self.pos_embed.weight
        for i, block in enumerate(self.blocks):
            h = block(h, last_only=i == len(self.blocks) - 1)
        return self.unembed(h[:, -1])

    def describe(self) -> str:
        """One line for `--dry-run`."""
        d = self.tok_embed.embedding_dim
        b = self.blocks[0]
        ln = "post-LN" if isinstance(b.ln1, nn.LayerNorm) else "no LayerNorm"
        return (
            f"ModularTransformer({len(self.blocks)} layer{'s' if len(self.blocks) > 1 else ''}, d {d}, "
            f"{b.attn.heads} heads, d_mlp {b.mlp.fc_in.out_features}, {ln}, vocab {self.p + 2}, out {self.p})"
        )
