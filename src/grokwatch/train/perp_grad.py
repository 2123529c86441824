"""⊥Grad (Prieto et al., "Grokking at the edge of numerical stability", 2025).

Why: once a network fits its training set, the gradient of cross-entropy mostly points along the
weights themselves ("naive loss minimization": scaling the logits up lowers the loss without
changing any prediction), which is what pushes softmax into collapse. ⊥Grad removes that
component before the optimizer sees the gradient:

    g_perp = g - (w . g) / (w . w) w,   then rescaled to the norm of g.

Per parameter tensor, flattened (the whole matrix is one vector w), as the authors' OrthoGrad
wrapper does: the direction to remove is "make this layer larger", a property of the tensor, not
of a row. The 1e-30 in both denominators is theirs too (a zero weight or gradient is left as is).
It edits `p.grad` in place, so any optimizer step that follows — torch's AdamW, or the loop's
direct fused-AdamW kernel call — uses the projected gradient; the fused fast path stays on.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["EPS", "project_gradients_"]

EPS = 1e-30


@torch.no_grad()
def project_gradients_(params: Iterable[torch.Tensor], eps: float = EPS) -> None:
    """Replace each `p.grad` by its component orthogonal to `p`, with the norm of the original."""
    for p in params:
        g = p.grad
        if g is None:
            continue
        w = p.detach()
        coef = torch.sum(w * g) / (torch.sum(w * w) + eps)
        g_perp = g - coef * w
        g_perp.mul_(torch.linalg.vector_norm(g) / (torch.linalg.vector_norm(g_perp) + eps))
        g.copy_(g_perp)
