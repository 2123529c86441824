"""Marchenko-Pastur law used for traps and plots: edges, density, CDF, KS, threshold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from grokwatch.spectral import marchenko_pastur as mp

QS = [1.0, 1.5, 2.0, 3.92, 4.0, 8.0]


@pytest.mark.parametrize("Q", QS)
def test_edges_closed_form(Q):
    lm, lp = mp.edges(Q)
    assert lm == pytest.approx((1 - 1 / np.sqrt(Q)) ** 2, abs=1e-15)
    assert lp == pytest.approx((1 + 1 / np.sqrt(Q)) ** 2, abs=1e-15)
    assert mp.lambda_plus(Q) == lp
    # the density vanishes outside [lm, lp] and is positive inside
    assert mp.density(np.array([lm - 1e-9 if lm > 0 else -1.0, lp, lp + 1e-9, 10.0]), Q).tolist() == [
        0,
        0,
        0,
        0,
    ]
    inside = np.linspace(lm, lp, 50)[1:-1]
    assert (mp.density(inside, Q) > 0).all()


@pytest.mark.parametrize("Q", QS)
def test_density_integrates_to_one_with_mean_one(Q):
    lm, lp = mp.edges(Q)
    mass, _ = integrate.quad(lambda x: mp.density(x, Q), lm, lp, limit=200)
    mean, _ = integrate.quad(lambda x: x * mp.density(x, Q), lm, lp, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-8)
    assert mean == pytest.approx(1.0, abs=1e-8)
    # the plotted curve integrates to ~1 too (trapezoid on the cosine grid)
    x, rho = mp.density_curve(Q, points=4000)
    assert np.isfinite(rho).all()
    assert integrate.trapezoid(rho, x) == pytest.approx(1.0, abs=0.02 if Q == 1.0 else 2e-3)
    assert x[-1] == pytest.approx(lp)


@pytest.mark.parametrize("Q", QS)
def test_cdf_matches_numerical_integral(Q):
    lm, lp = mp.edges(Q)
    assert mp.cdf(lm, Q) == pytest.approx(0.0, abs=1e-12)
    assert mp.cdf(lp, Q) == pytest.approx(1.0, abs=1e-12)
    assert mp.cdf(lm - 1, Q) == 0.0 and mp.cdf(lp + 1, Q) == 1.0
    xs = np.linspace(lm, lp, 9)[1:-1]
    num = [integrate.quad(lambda t: mp.density(t, Q), lm, a, limit=200)[0] for a in xs]
    np.testing.assert_allclose(mp.cdf(xs, Q), num, atol=1e-9)
    grid = np.linspace(lm, lp, 1000)
    assert (np.diff(mp.cdf(grid, Q)) >= 0).all()


def test_q_below_one_is_refused():
    with pytest.raises(ValueError):
        mp.edges(0.5)


def test_q1_density_is_singular_at_zero():
    assert np.isinf(mp.density(np.array([0.0]), 1.0)[0])
    assert mp.density(np.array([1e-8]), 1.0)[0] > 1e3


def test_tw_threshold_is_weightwatchers_formula():
    # weightwatcher 0.7.7 mp_fit with sigma = 1: bulk_max + sqrt(1/sqrt(Q) * bulk_max^(2/3) * M^(-2/3))
    for N, M in [(600, 300), (300, 300), (784, 200), (256, 64)]:
        Q = N / M
        bulk_max = (1 + np.sqrt(1 / Q)) ** 2
        tw = 1 / np.sqrt(Q) * np.power(bulk_max, 2 / 3) * np.power(M, -2 / 3)
        assert mp.tw_threshold(Q, M) == pytest.approx(bulk_max + np.sqrt(tw), rel=1e-14)
        assert mp.tw_margin(Q, M) > 0


def test_ks_distance_small_for_mp_sample_large_for_other():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((2000, 500))
    ev = np.linalg.eigvalsh(W.T @ W)
    ev /= ev.mean()
    assert mp.ks_distance(ev, 4.0) < 0.02
    assert mp.ks_distance(ev, 1.0) > 0.2  # wrong Q
    assert mp.ks_distance(rng.exponential(size=500), 4.0) > 0.1
    assert np.isnan(mp.ks_distance(np.array([]), 2.0))
    # agrees with scipy's one-sample KS statistic
    from scipy import stats

    assert mp.ks_distance(ev, 4.0) == pytest.approx(
        stats.kstest(ev, lambda x: mp.cdf(x, 4.0)).statistic, abs=1e-12
    )
