"""Correlation traps: eigenvalues of an element-shuffled layer above the MP bulk.

Method (arXiv 2506.04434 §3.2; WeightWatcher's `randomize=True`):
  1. shuffle all elements of each matrix of the layer (conv: each kernel slice
     on its own, as `esd.matrices` and WeightWatcher do) with a seeded
     numpy Generator; correlations are destroyed, the element values are kept;
  2. eigenvalues of W_shuf^T W_shuf (`esd.gram_eigenvalues`), pooled over
     slices, divided by their mean (so sigma^2 = 1);
  3. a trap is a rescaled eigenvalue above
         threshold = lambda_+ + sqrt((1/sqrt(Q)) lambda_+^(2/3) M^(-2/3)),
     lambda_+ = (1 + 1/sqrt(Q))^2, the exact MP edge for i.i.d. elements.
     WeightWatcher instead fits sigma to a kernel density of the shuffled ESD
     (`fit_density_with_range`) and uses (sigma (1 + 1/sqrt(Q)))^2; on
     heavy-tailed elements the fitted sigma is < 1 and it counts more traps.

Replicas: WeightWatcher uses 5 shuffles when the layer has < 100 eigenvalues per
matrix, concatenates their eigenvalues and counts spikes over all of them, so
its `rand_num_spikes` is the *sum* over the 5 replicas. We count each replica
on its own and report the (lower) median of the per-replica counts as
`n_traps`, so one unlucky shuffle neither creates nor hides a trap and the
number means "traps per shuffle" whatever the replica count. `counts` keeps the
per-replica numbers (their sum is WeightWatcher's convention). `rand_evals`
(all replicas pooled) feed `rand_lambda_max` (the largest over the replicas,
WeightWatcher's `max_rand_eval`), `ks_mp` and the plots.

Cost: one permutation and one eigensolve of an M x M Gram matrix per replica
and slice, i.e. about one extra eigensolve per layer when M >= 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grokwatch.spectral import marchenko_pastur as mp
from grokwatch.spectral.esd import gram_eigenvalues, matrices

__all__ = ["SMALL_M", "SMALL_REPLICAS", "TrapResult", "default_replicas", "find_traps"]

SMALL_M = 100  # below this many eigenvalues per matrix, use SMALL_REPLICAS shuffles (WeightWatcher)
SMALL_REPLICAS = 5


def default_replicas(M: int) -> int:
    return SMALL_REPLICAS if M < SMALL_M else 1


@dataclass
class TrapResult:
    n_traps: int  # lower median over replicas of the per-replica trap count
    lambda_plus: float  # exact MP edge (1 + 1/sqrt(Q))^2
    threshold: float  # lambda_plus + Tracy-Widom margin
    rand_lambda_max: float  # largest rescaled shuffled eigenvalue over all replicas
    ks_mp: float  # KS distance of the pooled rescaled shuffled ESD to MP (nan if undefined)
    replicas: int
    Q: float = 1.0
    N: int = 0
    M: int = 0
    seed: int = 0
    counts: tuple[int, ...] = ()  # traps per replica
    rand_evals: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # pooled, sorted
    trap_evals: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # pooled, > threshold

    @property
    def ww_count(self) -> int:
        """The count in WeightWatcher's convention (sum over replicas), for comparisons."""
        return int(sum(self.counts))

    def as_record_fields(self) -> dict:
        return {
            "n_traps": self.n_traps,
            "lambda_plus": self.lambda_plus,
            "threshold": self.threshold,
            "rand_lambda_max": self.rand_lambda_max,
            "ks_mp": self.ks_mp,
        }


def _shuffled_evals(mats: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    parts = []
    for m in mats:
        shuf = rng.permutation(np.ravel(m)).reshape(m.shape)
        parts.append(gram_eigenvalues(shuf))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def find_traps(W: np.ndarray, seed: int = 0, replicas: int | None = None) -> TrapResult:
    """Count correlation traps in one weight tensor (2-D, or conv 3-D/4-D).

    `seed` seeds a numpy Generator (same seed, same shuffles, same answer);
    `replicas` defaults to 5 when the smaller side M < 100, else 1.

        W = np.random.default_rng(0).normal(0, 0.05, (784, 200)) + 0.02   # a shifted mean: rank one
        find_traps(W).n_traps                                              # 1
    """
    W = np.asarray(W, dtype=np.float64)  # one cast, not one per replica
    mats = matrices(W)
    N, M = max(mats[0].shape), min(mats[0].shape)
    if M < 1:
        raise ValueError(f"cannot look for traps in an empty matrix of shape {W.shape}")
    if not np.isfinite(W).all():
        raise ValueError("non-finite values (NaN/Inf) in weights")
    Q = N / M
    r = default_replicas(M) if replicas is None else int(replicas)
    if r < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    lp = mp.lambda_plus(Q)
    thr = mp.tw_threshold(Q, M)

    rng = np.random.default_rng(seed)
    pooled, counts = [], []
    for _ in range(r):
        ev = _shuffled_evals(mats, rng)
        mean = ev.mean()
        if not mean > 0:  # all-zero layer: nothing to rescale, no traps
            ev = np.zeros_like(ev)
        else:
            ev = ev / mean
        counts.append(int(np.count_nonzero(ev > thr)))
        pooled.append(ev)
    allev = np.sort(np.concatenate(pooled))
    n_traps = int(np.sort(counts)[(r - 1) // 2])
    ks = mp.ks_distance(allev, Q) if allev[-1] > 0 else float("nan")
    return TrapResult(
        n_traps=n_traps,
        lambda_plus=float(lp),
        threshold=float(thr),
        rand_lambda_max=float(allev[-1]),
        ks_mp=ks,
        replicas=r,
        Q=float(Q),
        N=int(N),
        M=int(M),
        seed=int(seed),
        counts=tuple(counts),
        rand_evals=allev,
        trap_evals=allev[allev > thr],
    )
