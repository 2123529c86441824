"""How sure each alpha is: fit jumps between checkpoints, a bootstrap over eigenvalues, the layer mean.

    from grokwatch.report.uncertainty import bootstrap_fit, jump_flags, layer_mean_alpha
    jumps = jump_flags(rep)                 # {(checkpoint rel, layer): "n_tail 40 -> 18, ..."}
    b = bootstrap_fit(evals, 200, seed=0)   # b.std: spread of alpha over resampled spectra

sigma = (alpha - 1) / sqrt(n_tail) is the MLE's standard error *for a fixed
x_min*. The WeightWatcher fit chooses x_min itself, and when that choice moves
(a tail of 40 eigenvalues one checkpoint, 18 the next) alpha can move by far
more than sigma while sigma stays small. Two complements:

  - **jump flags** (always on, free): a fit is flagged when, against the same
    layer's fit at the previous checkpoint, n_tail changes by more than a factor
    `JUMP_TAIL` (2) or x_min / λ_max by more than a factor `JUMP_XMIN` (3), either
    way (relative to λ_max so that a layer rescaled as a whole, e.g. by weight
    decay, does not count: its fit covers the same part of the spectrum).
    The alpha of a flagged fit measures a different part of the spectrum than its
    neighbour's, so a step in alpha there is as likely the fit as the weights.
  - **bootstrap** (`--bootstrap N`): resample the layer's eigenvalues with
    replacement N times, refit each resample with the same fit (x_min free, so
    its choice is part of the spread), report the standard deviation and the
    16th/84th percentiles of alpha. Seeded per (seed, checkpoint index, layer):
    the same inputs give the same numbers.

The layer mean is WeightWatcher's summary number: the mean alpha over the
layers analysed (those whose fit succeeded) of one checkpoint.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "JUMP_TAIL",
    "JUMP_XMIN",
    "Bootstrap",
    "band",
    "bootstrap_fit",
    "bootstrap_report",
    "jump_flags",
    "jump_reason",
    "layer_mean_alpha",
]

JUMP_TAIL = 2.0  # n_tail ratio between neighbouring checkpoints above this: a jump
JUMP_XMIN = 3.0  # x_min ratio above this: a jump


@dataclass(frozen=True)
class Bootstrap:
    """The spread of alpha over `n` resampled spectra (`ok` of them fitted)."""

    n: int
    ok: int
    mean: float | None
    std: float | None
    lo: float | None  # 16th percentile (≈ mean - 1 sd for a normal spread)
    hi: float | None  # 84th percentile

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(a: float | int | None, b: float | int | None) -> float | None:
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return max(a, b) / min(a, b)


def _rel_xmin(r) -> float | None:
    """x_min as a fraction of λ_max: a layer whose weights shrink (weight decay) moves x_min, not the fit."""
    if r.xmin is None:
        return None
    return r.xmin / r.lambda_max if r.lambda_max else r.xmin


def jump_reason(prev, cur, tail: float = JUMP_TAIL, xmin: float = JUMP_XMIN) -> str | None:
    """Why `cur` (a LayerRecord) jumps against `prev` (the same layer, the previous checkpoint), or None."""
    if prev is None or cur is None or prev.alpha is None or cur.alpha is None:
        return None
    why = []
    r = _ratio(prev.n_tail, cur.n_tail)
    if r is not None and r > tail:
        why.append(f"n_tail {prev.n_tail} → {cur.n_tail}")
    r = _ratio(_rel_xmin(prev), _rel_xmin(cur))
    if r is not None and r > xmin:
        if cur.lambda_max and prev.lambda_max:
            why.append(f"x_min/λ_max {_rel_xmin(prev):.3g} → {_rel_xmin(cur):.3g}")
        else:
            why.append(f"x_min {prev.xmin:.3g} → {cur.xmin:.3g}")
    if not why:
        return None
    return ", ".join(why) + f" (α {prev.alpha:.2f} → {cur.alpha:.2f})"


def jump_flags(rep, tail: float = JUMP_TAIL, xmin: float = JUMP_XMIN) -> dict[tuple[str, str], str]:
    """{(checkpoint rel, layer): reason} for every fit that jumps against the layer's previous fitted checkpoint.

    Checkpoints are taken in the report's (step) order; a layer whose fit failed
    at a checkpoint is skipped, so the comparison is with the last fit that exists.
    """
    out: dict[tuple[str, str], str] = {}
    last: dict[str, object] = {}
    for c in rep.checkpoints:
        for r in c.records:
            if r.alpha is None:
                continue
            why = jump_reason(last.get(r.layer), r, tail, xmin)
            if why:
                out[(c.rel, r.layer)] = why
            last[r.layer] = r
    return out


def band(rec, boot: Bootstrap | None = None) -> tuple[float, float]:
    """The uncertainty band drawn around a fit's alpha: the bootstrap's 16th-84th percentiles when there
    is one (robust to the odd resample whose x_min lands in a tiny tail and gives alpha 30), else ± sigma."""
    if boot is not None and boot.lo is not None and boot.hi is not None:
        return boot.lo, boot.hi
    s = rec.sigma or 0.0
    return rec.alpha - s, rec.alpha + s


def layer_mean_alpha(records) -> float | None:
    """WeightWatcher's summary alpha: the mean over the layers of one checkpoint whose fit succeeded."""
    vals = [r.alpha for r in records if r.alpha is not None and math.isfinite(r.alpha)]
    return float(np.mean(vals)) if vals else None


def bootstrap_fit(evals: np.ndarray, n: int, seed: int = 0, method: str = "ww") -> Bootstrap:
    """Refit `n` resamples (with replacement) of the eigenvalues with the same fit; the spread of alpha.

    The fit keeps choosing x_min on every resample, so the spread includes the
    uncertainty of that choice, which sigma = (alpha - 1)/sqrt(n_tail) leaves out.
    """
    from grokwatch.spectral.powerlaw import fit_tail, nonzero_sorted

    x = nonzero_sorted(evals)
    if n < 1 or len(x) < 2:
        return Bootstrap(n, 0, None, None, None, None)
    rng = np.random.default_rng(seed)
    alphas = []
    for _ in range(n):
        f = fit_tail(x[rng.integers(0, len(x), len(x))], method)
        if f.ok and math.isfinite(f.alpha):
            alphas.append(f.alpha)
    if not alphas:
        return Bootstrap(n, 0, None, None, None, None)
    a = np.asarray(alphas)
    lo, hi = np.percentile(a, [16, 84])
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return Bootstrap(n, len(a), float(a.mean()), std, float(lo), float(hi))


def _seed(seed: int, index: int, layer: str) -> list[int]:
    return [seed, index, zlib.crc32(layer.encode())]


def bootstrap_report(rep, result, n: int) -> tuple[dict[tuple[str, str], Bootstrap], list[str]]:
    """Bootstrap every analysed layer of every checkpoint of a report; ({(rel, layer): Bootstrap}, errors).

    Re-reads each checkpoint's weights once (eigenvalues only, no shuffles). A
    checkpoint that cannot be read again gives one error line and no bootstrap.
    """
    from grokwatch.checkpoints import TensorReader, tensor_refs
    from grokwatch.spectral.esd import esd

    by_rel = {ck.rel: ck for ck in result.checkpoints}
    fit = str(getattr(rep.settings, "fit", "ww"))
    seed = int(getattr(rep.settings, "seed", 0))
    out: dict[tuple[str, str], Bootstrap] = {}
    errors: list[str] = []
    for i, view in enumerate(rep.checkpoints):
        ck = by_rel.get(view.rel)
        wanted = {r.layer for r in view.records if r.alpha is not None}
        if ck is None or not wanted:
            continue
        try:
            with TensorReader() as reader:
                for ref in tensor_refs(ck):
                    if ref.layer in wanted:
                        evals = esd(reader.read(ref))
                        out[(view.rel, ref.layer)] = bootstrap_fit(evals, n, _seed(seed, i, ref.layer), fit)
        except Exception as e:  # noqa: BLE001 - a bootstrap must never sink the report
            errors.append(f"{ck.path}: bootstrap skipped ({type(e).__name__}: {e})")
    return out, errors
