"""Power-law fits of an empirical spectral density's tail.

`ww_fit` reproduces WeightWatcher's default fit (`WWFit` in weightwatcher 0.7.7,
file WW_powerlaw.py): every sorted eigenvalue but the largest is a candidate
x_min; for each, the continuous MLE
    alpha_i = 1 + n_i / sum_{j>=i} ln(lambda_j / lambda_i),  n_i = N - i,
and the Kolmogorov-Smirnov distance
    D_i = max_k |1 - (lambda_{i+k} / lambda_i)^(1 - alpha_i) - k / n_i|;
the fit is the candidate with the smallest D. WeightWatcher loops over the
candidates in Python; here the sums are cumulative, every candidate's KS
distance is first bounded from below on every 8th point of its tail, and only
the candidates that could still win get their exact distance: the same minimum
and index as the full O(N^2) computation, many times faster. With fewer than 20 eigenvalues WeightWatcher
switches to a small-N rule (bias-corrected alpha (n-1)/..., tails of at least 8
points, then the minimum D); we copy that too, so results carry over.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BLOCK",
    "EVALS_THRESH",
    "FAILED",
    "FITS",
    "GRID_CACHE_MAX",
    "PowerLawFit",
    "SMALL_N_CUTOFF",
    "SMALL_N_KMIN",
    "WEAK_TAIL",
    "fit_tail",
    "log_hist_peak",
    "nonzero_sorted",
    "peak_fit",
    "powerlaw_fit",
    "ww_fit",
]

SMALL_N_CUTOFF = 20  # WeightWatcher's switch to the small-N fit
SMALL_N_KMIN = 8
EVALS_THRESH = 1e-5  # eigenvalues at or below this are dropped before fitting
WEAK_TAIL = 10  # n_tail below this: flag the fit as weak
FITS = ("ww", "peak", "powerlaw")


@dataclass
class PowerLawFit:
    alpha: float | None
    xmin: float | None
    D: float | None
    n_tail: int | None
    sigma: float | None
    method: str = "ww"

    @property
    def ok(self) -> bool:
        return self.alpha is not None

    @property
    def weak(self) -> bool:
        return self.n_tail is None or self.n_tail < WEAK_TAIL


FAILED = PowerLawFit(None, None, None, None, None)


def _tail_grid(N: int, rows: np.ndarray, n: np.ndarray, K: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Points i + k of each candidate's tail (k = 0, stride, ... < K) and 1 - k/n_i there.

    Laid out (k, candidate) so the maximum runs down axis 0 (a vectorized
    elementwise max; along a short axis 1 it is 3x slower). Offsets past the
    end of a tail repeat its last point, so they never change the maximum.
    """
    k = np.arange(0, K, stride)[:, None]
    pos = np.minimum(k + rows, N - 1)
    one_minus_kn = np.minimum(k, n - 1.0)
    one_minus_kn /= n
    np.subtract(1.0, one_minus_kn, out=one_minus_kn)
    return pos, one_minus_kn


@functools.lru_cache(maxsize=16)
def _full_grid(N: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """`_tail_grid` for every candidate of an N-point ESD; the layers of a run share N, so it is cached."""
    rows = np.arange(N - 1)
    pos, omk = _tail_grid(N, rows, (N - rows).astype(np.float64), N, stride)
    pos.setflags(write=False)
    omk.setflags(write=False)
    return pos, omk


def _ks_max(
    logx: np.ndarray, pos: np.ndarray, rows: np.ndarray, alphas: np.ndarray, one_minus_kn: np.ndarray
) -> np.ndarray:
    """max_k |1 - (x_{i+k}/x_i)^(1 - alpha_i) - k/n_i| over the grid's points, per candidate i."""
    w = logx[pos]
    w -= logx[rows]
    w *= 1.0 - alphas
    np.exp(w, out=w)
    np.subtract(one_minus_kn, w, out=w)
    np.abs(w, out=w)
    return w.max(axis=0)


GRID_CACHE_MAX = 250_000  # cache the bound grid up to this many points (~4 MB)
BLOCK = 1_000_000  # points per block when it is not cached


def _bounds(logx: np.ndarray, idx: np.ndarray, alphas: np.ndarray, n: np.ndarray, stride: int) -> np.ndarray:
    """KS deviations on every `stride`-th tail point: exact D for stride 1, a lower bound otherwise."""
    N = len(logx)
    C = -(-N // stride)
    if len(idx) == N - 1 and C * (N - 1) <= GRID_CACHE_MAX:
        pos, omk = _full_grid(N, stride)
        return _ks_max(logx, pos, idx, alphas, omk)
    out = np.empty(len(idx))
    step = max(1, BLOCK // C)
    for s in range(0, len(idx), step):
        b = slice(s, s + step)
        pos, omk = _tail_grid(N, idx[b], n[b], N, stride)
        out[b] = _ks_max(logx, pos, idx[b], alphas[b], omk)
    return out


def _candidate_stats(logx: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha_i for every candidate index and D_i where it can matter.

    D_i is exact for the winner and for every candidate that could tie it. The
    rest keep a lower bound (the same deviations on every 8th tail point): a
    candidate whose bound already exceeds the best exact D cannot win, so the
    minimum and its index equal those of the full O(N^2) computation. Exact
    rows only span the longest tail among them, usually a fraction of N.
    """
    N = len(logx)
    suffix = np.cumsum(logx[::-1])[::-1]  # suffix[i] = sum_{j>=i} ln x_j
    n = (N - idx).astype(np.float64)
    alphas = 1.0 + n / (suffix[idx] - n * logx[idx])
    # WeightWatcher leaves D = 1 where alpha <= 1; alpha = inf (a tail of tied eigenvalues, e.g. the two
    # largest equal) would give D = nan, which np.argmin would pick: it can never be the fit, so D = 1 too
    good = (alphas > 1) & np.isfinite(alphas)
    stride = 8 if N > 64 else 1
    bound = _bounds(logx, idx, alphas, n, stride)
    bound[~good] = 1.0
    if stride == 1:
        return alphas, bound
    exact = ~good
    Ds = bound.copy()
    best = np.inf
    while True:
        todo = np.nonzero(~exact & (bound <= best))[0]
        if len(todo) == 0:
            return alphas, Ds
        todo = todo[np.argsort(bound[todo], kind="stable")[:32]]
        rows, nt = idx[todo], n[todo]
        pos, omk = _tail_grid(N, rows, nt, int(nt.max()), 1)
        Ds[todo] = _ks_max(logx, pos, rows, alphas[todo], omk)
        exact[todo] = True
        best = min(best, float(Ds[todo].min()))


def _fit_standard(x: np.ndarray, candidates: np.ndarray, method: str) -> PowerLawFit:
    N = len(x)
    if len(candidates) == 0:
        return FAILED
    alphas, Ds = _candidate_stats(np.log(x), candidates)
    best = int(np.argmin(Ds))  # first minimum, as np.argmin in WeightWatcher
    i = int(candidates[best])
    alpha = float(alphas[best])
    if not np.isfinite(alpha):
        return FAILED
    n_tail = N - i
    return PowerLawFit(
        alpha, float(x[i]), float(Ds[best]), n_tail, float((alpha - 1) / np.sqrt(n_tail)), method
    )


def _fit_small_n(x: np.ndarray) -> PowerLawFit:
    """WeightWatcher's `fit_powerlaw_smallN` for fewer than 20 eigenvalues, vectorized."""
    N = len(x)
    logx = np.log(x)
    i = np.arange(N - 1)
    n = (N - i).astype(np.float64)
    s = np.cumsum(logx[::-1])[::-1][i] - n * logx[i]
    admissible = (n >= SMALL_N_KMIN) & (s > 1e-12)
    alphas = np.where(admissible, 1.0 + (n - 1.0) / s, 0.0)
    ok = admissible & (alphas > 1.0)
    k = np.arange(N)[:, None]
    pos = np.minimum(k + i, N - 1)  # past a tail's end: its last point again (no effect on the max)
    cdf = 1.0 - (x[pos] / x[i]) ** (1.0 - alphas)
    dev = np.abs(np.minimum(k, n - 1.0) / n - cdf).max(axis=0)
    Ds = np.where(ok, dev, 1.0)
    if not ok.any():  # no admissible tail: WeightWatcher fits all data
        s0 = logx.sum() - N * logx[0]
        if s0 <= 1e-12:
            return FAILED
        alphas[0] = 1.0 + (N - 1.0) / s0
        Ds[0] = np.max(np.abs(np.arange(N) / N - (1.0 - (x / x[0]) ** (1.0 - alphas[0]))))
    # fit_powerlaw_smallN picks by J = D - 0.868/sqrt(n); WWFit.__init__ then
    # overrides that choice with argmin(D), which is what WeightWatcher reports.
    j = int(np.argmin(Ds))
    n_tail = N - j
    return PowerLawFit(
        float(alphas[j]), float(x[j]), float(Ds[j]), n_tail, float((alphas[j] - 1) / np.sqrt(n_tail)), "ww"
    )


def nonzero_sorted(evals: np.ndarray) -> np.ndarray:
    x = np.sort(np.asarray(evals, dtype=np.float64))
    return x[x > EVALS_THRESH]


def ww_fit(evals: np.ndarray) -> PowerLawFit:
    """WeightWatcher's default power-law fit (free x_min, minimum KS distance).

        f = ww_fit(esd(W))
        f.alpha, f.xmin, f.n_tail, f.weak   # weak: fewer than 10 eigenvalues in the tail

    One errstate for the whole fit (overflow and 0-division are expected for
    degenerate candidates and handled); entering one per block cost ~20 % of a
    200-eigenvalue fit.
    """
    with np.errstate(all="ignore"):
        return _ww_fit(evals)


def _ww_fit(evals: np.ndarray) -> PowerLawFit:
    x = nonzero_sorted(evals)
    if len(x) < 2:
        return FAILED
    if len(x) < SMALL_N_CUTOFF:
        return _fit_small_n(x)
    return _fit_standard(x, np.arange(len(x) - 1), "ww")


def log_hist_peak(x: np.ndarray, bins: int = 100) -> float:
    """Left edge of the most populated bin of a 100-bin histogram of log10(lambda)."""
    h, edges = np.histogram(np.log10(x), bins=bins)
    return float(10 ** edges[int(np.argmax(h))])


def peak_fit(evals: np.ndarray) -> PowerLawFit:
    """x_min restricted to [0.95, 1.5] x the log-histogram peak of the ESD.

    This is what WeightWatcher's fix_fingers='xmin_peak' intends; WeightWatcher
    0.7.7 passes log10(0.95 peak) as the lower bound, which in practice leaves
    it open, so its numbers can differ from ours when the best x_min lies below
    0.95 x peak.
    """
    x = nonzero_sorted(evals)
    if len(x) < 2:
        return FAILED
    peak = log_hist_peak(x)
    cand = np.nonzero((x[:-1] >= 0.95 * peak) & (x[:-1] <= 1.5 * peak))[0]
    with np.errstate(all="ignore"):
        return _fit_standard(x, cand, "peak")


def _open_alpha_range(params) -> dict:
    """The keyword that lifts powerlaw's default cap on alpha, in the installed version's spelling."""
    for name in ("parameter_ranges", "parameter_range"):
        if name in params:
            return {name: {"alpha": [1, None]}}
    return {}


def powerlaw_fit(evals: np.ndarray) -> PowerLawFit:
    """The `powerlaw` package's own fit (Clauset et al.), silenced; a cross-check.

    powerlaw 2.x bounds the exponent to `Power_Law.DEFAULT_PARAMETER_RANGES = {'alpha': [0, 3]}`,
    so every layer with a thinner tail (alpha > 3: random-like layers) would come out as 2.9999
    and be mislabelled. The range is opened to (1, inf): alpha > 1 is what makes the density
    normalizable, and the continuous MLE is always above 1 anyway. powerlaw 1.x had no such
    bound and calls the argument `parameter_range`; both spellings are handled.
    """
    import contextlib
    import inspect
    import io
    import warnings

    import powerlaw

    x = nonzero_sorted(evals)
    if len(x) < 2:
        return FAILED
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = powerlaw.Fit(x, verbose=False, **_open_alpha_range(inspect.signature(powerlaw.Fit).parameters))
        alpha, xmin, D = f.power_law.alpha, f.power_law.xmin, f.power_law.D
    if alpha is None or not np.isfinite(alpha):
        return FAILED
    n_tail = int(np.sum(x >= xmin))
    return PowerLawFit(
        float(alpha), float(xmin), float(D), n_tail, float((alpha - 1) / np.sqrt(n_tail)), "powerlaw"
    )


def fit_tail(evals: np.ndarray, method: str = "ww") -> PowerLawFit:
    """The power-law fit chosen by the `--fit` option ("ww", "peak" or "powerlaw").

    fit_tail(esd(W), "peak").alpha
    """
    if method == "ww":
        return ww_fit(evals)
    if method == "peak":
        return peak_fit(evals)
    if method == "powerlaw":
        return powerlaw_fit(evals)
    raise ValueError(f"unknown fit {method!r}; choose one of {', '.join(FITS)}")
