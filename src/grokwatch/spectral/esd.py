"""Eigenvalues of a layer's correlation matrix and the cheap metrics built on them.

W is oriented N x M with N >= M; the ESD is the M eigenvalues of W^T W,
unnormalized (as WeightWatcher >= 0.6.5), computed in float64. Conv weights
(out, in, kh, kw) are treated as WeightWatcher does: one (out, in) matrix per
kernel position, eigenvalues of all kh*kw slices pooled into one ESD.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from grokwatch.settings import MIN_SIDE

__all__ = [
    "NonFiniteError",
    "SCRATCH_MAX",
    "analysable",
    "esd",
    "gram_eigenvalues",
    "gram_eigenvalues_owned",
    "matrices",
    "oriented_shape",
    "spectrum_metrics",
]


class NonFiniteError(ValueError):
    """The weights hold NaN/Inf (or overflow float64 when squared)."""

    def __init__(self, count: int):
        super().__init__(
            f"{count} non-finite values (NaN/Inf) in weights"
            if count
            else "weights overflow float64 when squared"
        )
        self.count = count


def matrices(W: np.ndarray) -> list[np.ndarray]:
    """The 2-D matrices whose eigenvalues make up a tensor's ESD (conv: per kernel slice)."""
    if W.ndim == 2:
        return [W]
    if W.ndim == 4:
        out, inn, kh, kw = W.shape
        return [W[:, :, i, j] for i in range(kh) for j in range(kw)]
    if W.ndim == 3:  # conv1d (out, in, k)
        return [W[:, :, i] for i in range(W.shape[2])]
    raise ValueError(f"cannot analyse a {W.ndim}-D tensor")


def analysable(shape: tuple[int, ...], min_side: int = MIN_SIDE) -> bool:
    """True for 2-D/3-D/4-D weights whose matrices have both sides >= min_side."""
    if len(shape) not in (2, 3, 4):
        return False
    return min(shape[0], shape[1]) >= min_side


SCRATCH_MAX = 32 * 2**20  # bytes of float64 kept per thread for the next layer's A and Gram
_scratch = threading.local()


def _buffer(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 work array, reused for the next layer of a scan when small enough.

    Why: a fresh 1-2 MB array per layer makes glibc hand memory back to the OS
    and fault it in again (~600 page faults per checkpoint of the paper's MLP,
    ~15 % of a scan, measured). Per thread, so concurrent callers never share
    one; above SCRATCH_MAX a plain array (its eigensolve dwarfs the faults).
    """
    n = math.prod(shape)
    if 8 * n > SCRATCH_MAX:
        return np.empty(shape)
    buf = getattr(_scratch, name, None)
    if buf is None or buf.size < n:
        buf = np.empty(n)
        setattr(_scratch, name, buf)
    return buf[:n].reshape(shape)


def gram_eigenvalues(W: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of W^T W for N x M W, N >= M after orientation, in float64.

    The Gram matrix plus LAPACK's symmetric eigensolver is ~4x faster than an
    SVD of W; values agree with svd(W)**2 to ~1e-14 relative to lambda_max.
    """
    W = np.asarray(W)
    if W.dtype == np.float64 and W.flags.c_contiguous and 8 * W.size > SCRATCH_MAX:
        A = W  # a large layer read as float64: a copy would double the peak memory of the scan
    else:
        A = _buffer("A", W.shape)
        np.copyto(
            A, W
        )  # float32/16 -> float64, exact; cast before orienting: a straight, not a transposing, copy
    if A.shape[0] < A.shape[1]:
        A = A.T
    G = np.matmul(A.T, A, out=_buffer("G", (A.shape[1], A.shape[1])))  # numpy uses BLAS syrk here
    # Any NaN/Inf element makes its column's squared norm on the diagonal non-finite:
    # checking the trace is ~20x cheaper than np.isfinite on every element.
    if not np.isfinite(G.trace()):
        raise NonFiniteError(int((~np.isfinite(W)).sum()))
    ev = np.linalg.eigvalsh(G)
    return np.maximum(ev, 0.0, out=ev)  # rounding can leave zero modes at -1e-13


def gram_eigenvalues_owned(box: list[np.ndarray]) -> np.ndarray:
    """`gram_eigenvalues` of the one array in `box`, which is emptied: the caller hands over its
    only reference, so W is freed once its Gram exists, before the eigensolve.

    Why: for an LLM embedding (32000 x 4096) W is 1.05 GB in float64 and its Gram 0.13 GB;
    eigvalsh copies the Gram, so keeping W through the eigensolve set a scan's peak memory.
    Same operations as `gram_eigenvalues`, so the same eigenvalues, bit for bit.
    """
    W = box.pop()
    if not (W.dtype == np.float64 and W.flags.c_contiguous and 8 * W.size > SCRATCH_MAX):
        return gram_eigenvalues(W)
    A = W.T if W.shape[0] < W.shape[1] else W
    G = np.matmul(A.T, A)
    if not np.isfinite(G.trace()):
        raise NonFiniteError(int((~np.isfinite(W)).sum()))
    del A, W
    ev = np.linalg.eigvalsh(G)
    del G
    return np.maximum(ev, 0.0, out=ev)


def esd(W: np.ndarray) -> np.ndarray:
    """The pooled, sorted eigenvalues of W^T W (float64) for a weight tensor, as WeightWatcher's ESD.

    Conv kernels are one matrix per kernel position, their eigenvalues pooled.

        evals = esd(np.random.default_rng(0).normal(size=(300, 100)))   # 100 eigenvalues, ascending
    """
    mats = matrices(np.asarray(W))
    if len(mats) == 1:
        return gram_eigenvalues(mats[0])
    return np.sort(np.concatenate([gram_eigenvalues(m) for m in mats]))


def oriented_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(N, M) with N >= M for the matrices a tensor is analysed as."""
    a, b = int(shape[0]), int(shape[1])
    return (max(a, b), min(a, b))


def spectrum_metrics(evals: np.ndarray) -> dict[str, float]:
    """Norm-type metrics from the eigenvalues (no fit needed)."""
    ev = np.asarray(evals, dtype=np.float64)
    total = float(ev.sum())
    lmax = float(ev.max()) if len(ev) else 0.0
    out = {
        "lambda_max": lmax,
        "log_spectral_norm": math.log10(lmax) if lmax > 0 else None,
        "log_norm": math.log10(total) if total > 0 else None,
        "l2_norm": math.sqrt(total),  # Frobenius norm: sum(lambda) = trace(W^T W), no second pass
        "stable_rank": total / lmax if lmax > 0 else None,
        "entropy": None,
    }
    if total > 0 and len(ev) > 1:
        p = ev[ev > 0] / total
        # Spectral entropy normalized to [0, 1]: 1 = flat spectrum, 0 = rank one.
        out["entropy"] = float(-(p * np.log(p)).sum() / math.log(len(ev)))
    return out
