"""The paper's competing measures that need the model and its training inputs, computed by
`grokwatch train` at every checkpoint (with the weight-only ones of `grokwatch.measures`).

Following the Grokking-MNIST notebook of WeightWatcher-Examples:

- activation sparsity: the fraction of first-hidden-layer ReLU outputs (after `fc1`) below
  `ACT_THRESHOLD` = 1.0 over all training inputs (`act_sparsity`, the notebook's threshold, made
  for its init-x4 MNIST MLP), and the fraction that are exactly 0 (`act_inactive`, the same with
  threshold 0: scale-free, so it also says something where every activation is far below 1, as in
  the one-hot modular-addition MLP, whose `act_sparsity` stays at ~1.0 all run);
- absolute weight entropy of the first weight matrix the input meets (`fc1.weight`, or
  `embed.weight` for the embedding model): -sum |w| log|w|;
- greedy circuit complexity: mean over training inputs of KL(P || Q), P the model's softmax
  output and Q that of a copy with `DROP` = 50 % of the entries of every weight matrix (2-D
  parameters; biases kept) set to 0, chosen by a torch.Generator seeded with the run's seed,
  so every checkpoint of a run drops the same positions and the global RNG (which resume
  restores bit for bit) is never touched;
- L2 norms: of every parameter tensor (`l2_norm.NAME`) and of all of them together (`l2_norm`).

All in float64 from the model's own dtype, under torch.no_grad, in chunks of EVAL_CHUNK rows.
"""

from __future__ import annotations

import copy

import torch

from grokwatch.measures import abs_weight_entropy

__all__ = [
    "ACT_THRESHOLD",
    "DROP",
    "activation_sparsity",
    "circuit_kl",
    "first_weight",
    "model_measures",
    "norms",
]

ACT_THRESHOLD = 1.0
DROP = 0.5
_CHUNK = 8192


def first_weight(model: torch.nn.Module) -> tuple[str, torch.Tensor] | None:
    """The first 2-D parameter in module order: the first matrix the input meets in these models."""
    for name, p in model.named_parameters():
        if p.dim() == 2:
            return name, p
    return None


@torch.no_grad()
def activation_sparsity(
    model: torch.nn.Module, x: torch.Tensor, threshold: float = ACT_THRESHOLD, inclusive: bool = False
) -> float | None:
    """Fraction of relu(fc1(.)) outputs below `threshold` (`<=` with `inclusive`) over the rows of
    `x`; None for a model without an `fc1` Linear."""
    fc1 = getattr(model, "fc1", None)
    if not isinstance(fc1, torch.nn.Linear):
        return None
    seen: list[torch.Tensor] = []
    handle = fc1.register_forward_hook(lambda mod, inp, out: seen.append(out))
    below = total = 0
    try:
        for i in range(0, len(x), _CHUNK):
            seen.clear()
            model(x[i : i + _CHUNK])
            h = torch.relu(seen[0])
            below += int(((h <= threshold) if inclusive else (h < threshold)).sum())
            total += h.numel()
    finally:
        handle.remove()
    return below / max(total, 1)


@torch.no_grad()
def circuit_kl(model: torch.nn.Module, x: torch.Tensor, seed: int, drop: float = DROP) -> float:
    """Mean KL(softmax(model(x)) || softmax(pruned(x))) with `drop` of each weight matrix zeroed."""
    pruned = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(int(seed))
    for p in pruned.parameters():
        if p.dim() >= 2:
            keep = torch.rand(p.shape, generator=gen) >= drop
            p.mul_(keep.to(device=p.device, dtype=p.dtype))
    total = 0.0
    for i in range(0, len(x), _CHUNK):
        xb = x[i : i + _CHUNK]
        lp = torch.log_softmax(model(xb).to(torch.float64), dim=-1)
        lq = torch.log_softmax(pruned(xb).to(torch.float64), dim=-1)
        total += float((lp.exp() * (lp - lq)).sum())
    return total / max(len(x), 1)


@torch.no_grad()
def norms(model: torch.nn.Module) -> dict[str, float]:
    """`l2_norm` of all parameters together and `l2_norm.NAME` of each parameter tensor."""
    out: dict[str, float] = {}
    total = 0.0
    for name, p in model.named_parameters():
        sq = float(torch.sum(p.detach().to(torch.float64) ** 2))
        out[f"l2_norm.{name}"] = sq**0.5
        total += sq
    return {"l2_norm": total**0.5, **out}


def model_measures(model: torch.nn.Module, x: torch.Tensor, seed: int) -> dict[str, float]:
    """Every measure above for one checkpoint; keys are the metrics.jsonl / metadata names."""
    out: dict[str, float] = {}
    sp = activation_sparsity(model, x)
    if sp is not None:
        out["act_sparsity"] = sp
        out["act_inactive"] = activation_sparsity(model, x, 0.0, inclusive=True)
    fw = first_weight(model)
    if fw is not None:
        out["abs_weight_entropy"] = abs_weight_entropy(fw[1].detach().cpu().numpy())  # as scan computes it
    out["circuit_kl"] = circuit_kl(model, x, seed)
    out.update(norms(model))
    return out
