"""Weight-only measures that compete with HTSR's α in the paper's comparison (Prakash & Martin's
Grokking-MNIST notebook): the absolute weight entropy and the L2 norm of a weight tensor.

Why here and in numpy: `scan` computes them for any checkpoint of any trainer from the tensor
alone (no model, no data), in the same worker that reads the tensor for its eigenvalues. The
measures that need the model and its inputs (activation sparsity, circuit complexity) live in
`grokwatch.train.measures`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["abs_weight_entropy", "l2_norm", "total_l2", "weight_measures"]

_BLOCK = 1 << 20


def weight_measures(w: np.ndarray) -> tuple[float, float]:
    """(l2_norm, abs_weight_entropy) of one tensor in one pass (what `scan` records per layer).

    The norm is computed in float64. The entropy's logs run in the tensor's own precision (float32
    for float32/bf16/fp16 weights, float64 for float64), summed in float64: the log of 157k float32
    weights costs ~1/5 of the float64 one (the measures went from half a 200x784 layer's eigensolve
    to a fifth) and changes the entropy by ~1e-9 relative. Blocks of 2^20 elements bound the temporaries for LLM-sized layers;
    0 log 0 = 0. Elementwise ufuncs, not np.dot: BLAS threads that spin-wait on a busy machine made
    a dot-product version 10x slower here.
    """
    flat = np.asarray(w).ravel()
    work = np.float64 if flat.dtype == np.float64 else np.float32
    sq = ent = 0.0
    for i in range(0, flat.size, _BLOCK):
        a = np.abs(flat[i : i + _BLOCK].astype(work, copy=False))
        wide = a.astype(np.float64)  # squares in float64: the norm stays exact to float64 rounding
        sq += float(np.sum(wide * wide))
        log = np.log(a, out=np.zeros_like(a), where=a > 0)
        ent -= float(np.sum(a * log, dtype=np.float64))
    return float(np.sqrt(sq)), ent


def abs_weight_entropy(w: np.ndarray) -> float:
    """-sum |w| log|w| over all elements (natural log; 0 log 0 = 0), in float64.

    Not a normalized entropy: the notebook's measure, which grows with the number of weights
    and falls as weights concentrate on a few large values or shrink toward 0.
    """
    return weight_measures(w)[1]


def l2_norm(w: np.ndarray) -> float:
    """Frobenius norm sqrt(sum w^2), in float64."""
    return weight_measures(w)[0]


def total_l2(norms) -> float:
    """The L2 norm of several tensors taken together, from their own norms: sqrt(sum n^2)."""
    return float(np.sqrt(sum(float(n) ** 2 for n in norms)))
