"""How sure α is: the jump flag on constructed trajectories, the bootstrap against Monte Carlo truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from grokwatch.records import LayerRecord
from grokwatch.report.uncertainty import (
    JUMP_TAIL,
    JUMP_XMIN,
    bootstrap_fit,
    jump_flags,
    layer_mean_alpha,
)
from grokwatch.spectral.powerlaw import ww_fit


def _rep(trajectory: list[tuple[float, int, float, float]]):
    """A report-shaped object: one layer, checkpoints with (alpha, n_tail, xmin, lambda_max)."""
    views = []
    for i, (alpha, n_tail, xmin, lmax) in enumerate(trajectory):
        rec = LayerRecord(
            f"c{i}",
            10 * (i + 1),
            "fc1.weight",
            [100, 200],
            alpha=alpha,
            n_tail=n_tail,
            xmin=xmin,
            lambda_max=lmax,
        )
        views.append(SimpleNamespace(rel=f"c{i}", step=rec.step, records=[rec]))
    return SimpleNamespace(checkpoints=views)


def test_jump_flag_fires_on_constructed_trajectory():
    # the README's quick start: fc1 alpha 5.82 -> 12.59 while the tail shrinks to 18 eigenvalues
    rep = _rep([(5.9, 45, 3.0, 40.0), (5.82, 41, 3.1, 41.0), (12.59, 18, 3.2, 42.0), (12.4, 19, 3.2, 42.0)])
    flags = jump_flags(rep)
    assert list(flags) == [("c2", "fc1.weight")]
    assert "n_tail 41 → 18" in flags[("c2", "fc1.weight")] and "5.82 → 12.59" in flags[("c2", "fc1.weight")]
    # an x_min jump relative to lambda_max (same n_tail): flagged; the same fit on a layer rescaled as a whole: not
    moved = _rep([(4.0, 30, 1.0, 50.0), (4.1, 30, 10.0, 50.0)])
    assert list(jump_flags(moved)) == [("c1", "fc1.weight")]
    rescaled = _rep([(4.0, 30, 1.0, 50.0), (4.0, 30, 0.1, 5.0)])  # weight decay: every eigenvalue / 10
    assert jump_flags(rescaled) == {}


def test_jump_flag_silent_on_smooth_trajectory():
    steps = 40
    rep = _rep(
        [
            (6.0 - 3.0 * t, int(20 + 30 * t), 2.0 * (1 + t), 40.0 * (1 + 2 * t))
            for t in np.linspace(0.0, 1.0, steps)
        ]
    )
    assert jump_flags(rep) == {}
    # exactly at the thresholds is not a jump (strictly greater)
    edge = _rep([(4.0, 10, 1.0, 10.0), (4.0, int(10 * JUMP_TAIL), JUMP_XMIN, 10.0)])
    assert jump_flags(edge) == {}


def test_jump_skips_failed_fits():
    rep = _rep([(4.0, 40, 1.0, 10.0), (None, None, None, None), (4.1, 38, 1.0, 10.0)])
    assert jump_flags(rep) == {}


def test_layer_mean_alpha():
    recs = [LayerRecord("c", 1, n, [10, 10], alpha=a) for n, a in (("a", 2.0), ("b", 4.0), ("c", None))]
    assert layer_mean_alpha(recs) == 3.0
    assert layer_mean_alpha([LayerRecord("c", 1, "a", [10, 10])]) is None


def _pareto(alpha: float, n: int, seed: int) -> np.ndarray:
    """Samples of the density p(x) ∝ x^-alpha on x >= 1 (inverse CDF)."""
    return np.random.default_rng(seed).uniform(size=n) ** (-1.0 / (alpha - 1.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_recovers_planted_uncertainty(seed):
    alpha, n = 2.5, 500
    x = _pareto(alpha, n, seed)
    b = bootstrap_fit(x, 150, seed=seed)
    assert b.ok == 150
    # independent truth 1: the spread of the fit over fresh samples of the same law (Monte Carlo)
    truth = np.std([ww_fit(_pareto(alpha, n, 1000 + k)).alpha for k in range(200)], ddof=1)
    assert truth / 1.6 < b.std < truth * 1.6, (b.std, truth)  # bootstrap spread varies by sample
    # independent truth 2: the MLE's standard error (alpha - 1)/sqrt(n_tail) with the whole sample in the tail
    se = (alpha - 1) / np.sqrt(n)
    assert se / 2 < b.std < se * 2
    assert abs(b.mean - alpha) < 3 * b.std and b.lo < alpha < b.hi + b.std


def test_bootstrap_deterministic_and_seeded():
    x = _pareto(3.0, 200, 5)
    assert bootstrap_fit(x, 30, seed=1) == bootstrap_fit(x, 30, seed=1)
    assert bootstrap_fit(x, 30, seed=1) != bootstrap_fit(x, 30, seed=2)
    empty = bootstrap_fit(np.array([0.0, 0.0]), 10)
    assert empty.ok == 0 and empty.std is None
