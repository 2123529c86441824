"""Correlation traps: false positives on Gaussian layers, planted mean shifts, heavy tails, figures."""

from __future__ import annotations

import numpy as np
import pytest

from grokwatch.spectral import marchenko_pastur as mp
from grokwatch.spectral.traps import find_traps

# Q = N/M from 1 to 8; M < 100 uses 5 shuffles, M >= 100 one.
SHAPES = [
    (60, 60),
    (90, 60),
    (120, 60),
    (240, 60),
    (480, 60),
    (100, 100),
    (200, 100),
    (800, 100),
    (150, 150),
    (300, 150),
    (600, 150),
    (64, 32),
]


def test_no_traps_on_gaussian_layers():
    """False-positive rate: 0 of 60 seeded Gaussian matrices (0 of 3,160 in the measurement in docs/traps.md).

    Zero traps only means something if the cut sits where it should: each matrix's threshold
    is checked against the closed form and its largest shuffled eigenvalue must reach the
    Marchenko-Pastur bulk edge (a cut at infinity, or a wrong rescaling, would also give zero).
    """
    flagged = []
    for k in range(60):
        N, M = SHAPES[k % len(SHAPES)]
        rng = np.random.default_rng(10_000 + k)
        W = rng.normal(0.0, 0.05, size=(M, N) if k % 2 else (N, M))  # both orientations
        t = find_traps(W, seed=k)
        Q = N / M
        lp = (1 + 1 / np.sqrt(Q)) ** 2  # MP edge for sigma^2 = 1, written out here
        assert (t.Q, t.N, t.M) == (Q, N, M)
        assert t.lambda_plus == pytest.approx(lp, rel=1e-12)
        assert t.threshold == pytest.approx(
            lp + np.sqrt(lp ** (2 / 3) / np.sqrt(Q) / M ** (2 / 3)), rel=1e-12
        )
        assert 0.85 * lp < t.rand_lambda_max < t.threshold + 0.5, (N, M, t.rand_lambda_max, lp)
        assert t.rand_evals.mean() == pytest.approx(1.0, rel=1e-9)  # rescaled to mean 1
        assert t.ks_mp < 0.1
        assert t.n_traps == int(np.median(t.counts)) and len(t.counts) == (5 if M < 100 else 1)
        if t.n_traps:
            flagged.append((N, M, k, t.n_traps))
    assert flagged == []


def test_planted_mean_shift_gives_one_trap():
    rng = np.random.default_rng(1)
    for shape in [(300, 300), (600, 300), (256, 64), (784, 200)]:
        W = rng.normal(0.0, 0.05, size=shape) + 0.02
        counts = [find_traps(W, seed=s).n_traps for s in range(5)]
        assert counts == [1] * 5, (shape, counts)  # all elements + c is rank one after shuffling
    t = find_traps(rng.normal(0.0, 0.05, size=(300, 300)) + 0.02, seed=0)
    assert t.rand_lambda_max > 5 * t.threshold
    assert len(t.trap_evals) == 1 and t.trap_evals[0] == t.rand_lambda_max


@pytest.mark.parametrize("df", [1.5, 1.9])
def test_heavy_tailed_elements_give_traps_stable_across_seeds(df):
    """Student-t, df < 2 (infinite variance): traps; over 10 seeds every count lies within +-50% of the median."""
    W = np.random.default_rng(2).standard_t(df, size=(300, 600))
    counts = np.array([find_traps(W, seed=s).n_traps for s in range(10)])
    med = np.median(counts)
    assert counts.min() >= 3
    assert (np.abs(counts - med) <= 0.5 * med).all(), counts


def test_heavy_tailed_small_layer_uses_five_shuffles():
    W = np.random.default_rng(3).standard_t(1.5, size=(64, 256))
    t = find_traps(W, seed=0)
    assert t.replicas == 5 and len(t.counts) == 5
    assert t.n_traps == int(np.sort(t.counts)[2]) >= 1  # median of the 5 per-shuffle counts
    assert t.ww_count == sum(t.counts)  # WeightWatcher's convention: all 5 shuffles pooled
    assert len(t.rand_evals) == 5 * 64
    assert len(t.trap_evals) == t.ww_count


def test_replicas_default_and_override():
    rng = np.random.default_rng(4)
    assert find_traps(rng.normal(size=(200, 99))).replicas == 5
    assert find_traps(rng.normal(size=(200, 100))).replicas == 1
    assert find_traps(rng.normal(size=(200, 100)), replicas=3).replicas == 3
    with pytest.raises(ValueError):
        find_traps(rng.normal(size=(20, 20)), replicas=0)


def test_seeded_and_deterministic():
    W = np.random.default_rng(5).standard_t(1.8, size=(120, 200)).astype(np.float32)
    a, b = find_traps(W, seed=7), find_traps(W, seed=7)
    np.testing.assert_array_equal(a.rand_evals, b.rand_evals)
    assert a.n_traps == b.n_traps
    c = find_traps(W, seed=8)
    assert not np.array_equal(a.rand_evals, c.rand_evals)
    # float32 and float64 copies of the same values give the same answer
    d = find_traps(W.astype(np.float64), seed=7)
    np.testing.assert_allclose(a.rand_evals, d.rand_evals, rtol=1e-12)
    # orientation does not matter for the numbers reported
    e = find_traps(W.T, seed=7)
    assert (e.N, e.M, e.lambda_plus, e.threshold) == (a.N, a.M, a.lambda_plus, a.threshold)


def test_fields_and_rescaling():
    W = np.random.default_rng(6).normal(size=(400, 100))
    t = find_traps(W, seed=0)
    assert (t.N, t.M, t.Q) == (400, 100, 4.0)
    assert t.lambda_plus == pytest.approx(mp.lambda_plus(4.0))
    assert t.threshold == pytest.approx(mp.tw_threshold(4.0, 100))
    assert t.rand_evals.mean() == pytest.approx(1.0)
    assert t.rand_lambda_max == t.rand_evals[-1]
    assert set(t.as_record_fields()) == {"n_traps", "lambda_plus", "threshold", "rand_lambda_max", "ks_mp"}


def test_conv_slices_shuffled_one_by_one():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(64, 32, 3, 3))
    t = find_traps(W, seed=0)
    assert (t.N, t.M, t.replicas, t.n_traps) == (64, 32, 5, 0)
    assert len(t.rand_evals) == 5 * 9 * 32
    W[:, :, 1, 1] += 0.5  # one kernel position with an atypical mean: one trap in that slice
    assert find_traps(W, seed=0).n_traps == 1


def test_degenerate_inputs():
    t = find_traps(np.zeros((30, 20)))
    assert t.n_traps == 0 and t.rand_lambda_max == 0.0 and np.isnan(t.ks_mp)
    W = np.ones((30, 20))
    W[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        find_traps(W)
    assert find_traps(np.full((50, 20), 0.3)).n_traps == 1  # constant layer: rank one


@pytest.mark.slow
def test_agrees_with_weightwatcher_rand_num_spikes():
    """Gaussian: 0 traps by both; +0.02 mean shift: 1 by both (WeightWatcher 0.7.7, randomize=True)."""
    pytest.importorskip("weightwatcher")
    torch = pytest.importorskip("torch")
    import logging
    import warnings

    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)

    def ww_spikes(W):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.astype(np.float32)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.random.seed(0)
            df = ww.WeightWatcher(model=torch.nn.Sequential(lin)).analyze(randomize=True)
        return int(df["rand_num_spikes"].iloc[0])

    rng = np.random.default_rng(0)
    gauss = rng.normal(0.0, 0.05, size=(300, 300))
    shifted = rng.normal(0.0, 0.05, size=(300, 300)) + 0.02
    assert ww_spikes(gauss) == find_traps(gauss).n_traps == 0
    assert ww_spikes(shifted) == find_traps(shifted).n_traps == 1


# ---------------------------------------------------------------- figures


def _figure_inputs():
    from grokwatch.spectral.esd import esd
    from grokwatch.spectral.powerlaw import fit_tail

    W = np.random.default_rng(8).standard_t(1.8, size=(100, 200))
    ev = esd(W)
    f = fit_tail(ev)
    return ev, find_traps(W, seed=0), f


def test_figure_bytes_are_deterministic_and_labelled():
    from grokwatch.report.layer_figure import layer_figure, layer_svg

    ev, t, f = _figure_inputs()
    assert t.n_traps > 0
    kw = dict(alpha=f.alpha, xmin=f.xmin, title="fc1.weight @ step 100 $x")
    svg1, svg2 = layer_figure(ev, t, **kw), layer_figure(ev, t, **kw)
    assert svg1 == svg2 and svg1.startswith(b"<?xml")
    assert b"<dc:date>" not in svg1
    png1, png2 = layer_figure(ev, t, fmt="png", **kw), layer_figure(ev, t, fmt="png", **kw)
    assert png1 == png2 and png1[:8] == b"\x89PNG\r\n\x1a\n" and b"matplotlib" not in png1.lower()
    inline = layer_svg(ev, t, **kw)
    assert inline.startswith("<svg") and "<!DOCTYPE" not in inline
    with pytest.raises(ValueError):
        layer_figure(ev, t, fmt="gif")


def test_save_figure_and_edge_cases(tmp_path):
    from grokwatch.report.layer_figure import save_layer_figure

    ev, t, f = _figure_inputs()
    p = save_layer_figure(tmp_path / "sub" / "a.svg", ev, t, alpha=f.alpha, xmin=f.xmin)
    assert p.read_bytes().startswith(b"<?xml")
    # Q = 1, no fit, no traps; and an all-zero layer: figures still render
    W = np.random.default_rng(9).normal(size=(50, 50))
    save_layer_figure(tmp_path / "q1.png", np.linalg.eigvalsh(W.T @ W), find_traps(W))
    save_layer_figure(tmp_path / "zero.png", np.zeros(20), find_traps(np.zeros((30, 20))))
    assert (tmp_path / "q1.png").stat().st_size > 1000 and (tmp_path / "zero.png").exists()
