"""StableMax cross-entropy (Prieto et al., "Grokking at the edge of numerical stability", 2025).

Why: without weight decay, softmax cross-entropy in float32 drives the correct logit so far above
the others that exp() rounds the loss of every training example to exactly 0 ("softmax collapse")
and the gradient stops carrying information; test accuracy then never grokks. StableMax replaces
exp by s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0): positive, increasing, and only linear for large
logits, so the probabilities s(x_i) / sum_j s(x_j) saturate far more slowly. As the authors do,
the log-probabilities are computed in float64 whatever the model's dtype (autograd casts the
gradient back). s is monotone, so argmax (accuracy) is the same as with softmax.
"""

from __future__ import annotations

import torch

__all__ = ["log_stablemax", "stablemax", "stablemax_cross_entropy", "stablemax_s"]


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0, elementwise.

    Each branch sees its own clamped input, so the branch torch.where discards never produces
    an inf whose zero gradient would turn into NaN (1 / (1 - x) at x = 1). The authors add 1e-30
    to 1 - x for the same reason; in float64 that changes no value for x < 0.
    """
    return torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(s(x_i) / sum_j s(x_j)) along `dim`, computed in float64."""
    s = stablemax_s(x.to(torch.float64))
    return torch.log(s) - torch.log(s.sum(dim=dim, keepdim=True))


def stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """StableMax probabilities (float64); they sum to 1 along `dim`."""
    s = stablemax_s(x.to(torch.float64))
    return s / s.sum(dim=dim, keepdim=True)


def stablemax_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Negative log StableMax probability of the target class (float64), mean or sum over rows."""
    nll = -log_stablemax(logits, dim=-1).gather(-1, target[:, None]).squeeze(-1)
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    if reduction == "none":
        return nll
    raise ValueError(f"unknown reduction {reduction!r}")
