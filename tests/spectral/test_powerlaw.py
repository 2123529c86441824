"""The power-law fit against independent references.

- `naive_ww_fit` below is a line-by-line loop of WeightWatcher 0.7.7's WWFit
  (written from its documented algorithm, not imported): our vectorized fit
  must give the same alpha, xmin and D to 1e-6 (observed: ~1e-12).
- Pareto samples of known exponent: alpha recovered within 3 sigma.
- `--fit powerlaw` equals the powerlaw package's own numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from grokwatch.spectral.esd import esd, gram_eigenvalues
from grokwatch.spectral.powerlaw import fit_tail, peak_fit, ww_fit


def naive_ww_fit(evals):
    x = np.sort(evals[evals > 1e-5])
    N = len(x)
    small = N < 20
    best = None
    for i in range(N - 1):
        n = N - i
        s = np.sum(np.log(x[i:])) - n * np.log(x[i])
        if small:
            if n < 8 or s <= 1e-12:
                D, a = 1.0, (1 + (n - 1) / s if s > 1e-12 and n >= 8 else 0.0)
            else:
                a = 1 + (n - 1) / s
                D = 1.0 if a <= 1 else np.max(np.abs(1 - (x[i:] / x[i]) ** (1 - a) - np.arange(n) / n))
        else:
            a = 1 + n / s
            D = 1.0 if a <= 1 else np.max(np.abs(1 - (x[i:] / x[i]) ** (1 - a) - np.arange(n) / n))
        if best is None or D < best[2]:
            best = (a, x[i], D, n)
    return best


SHAPES = [(784, 200), (200, 200), (300, 60), (120, 40), (40, 12), (200, 10), (25, 15)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tail", ["gauss", "t3", "t1.5"])
def test_matches_naive_weightwatcher_loop(shape, tail):
    rng = np.random.default_rng(hash((shape, tail)) % 2**32)
    W = rng.normal(size=shape) if tail == "gauss" else rng.standard_t(float(tail[1:]), size=shape)
    ev = esd(W)
    a, xmin, D, n = naive_ww_fit(ev)
    f = ww_fit(ev)
    assert f.alpha == pytest.approx(a, abs=1e-6)
    assert f.xmin == pytest.approx(xmin, rel=1e-9)
    assert f.D == pytest.approx(D, abs=1e-6)
    assert f.n_tail == n
    assert f.sigma == pytest.approx((f.alpha - 1) / np.sqrt(n))


@pytest.mark.parametrize("shape", [(784, 200), (300, 60), (120, 40)])
def test_uncached_row_blocks_match_naive_loop(shape, monkeypatch):
    """Big ESDs skip the cached bound grid and work in row blocks: same numbers."""
    import grokwatch.spectral.powerlaw as fit

    monkeypatch.setattr(fit, "GRID_CACHE_MAX", 0)
    monkeypatch.setattr(fit, "BLOCK", 97)  # several uneven blocks
    ev = esd(np.random.default_rng(7).standard_t(2.5, size=shape))
    a, xmin, D, n = naive_ww_fit(ev)
    f = ww_fit(ev)
    assert (f.alpha, f.xmin, f.n_tail) == (pytest.approx(a, abs=1e-9), xmin, n)
    assert f.D == pytest.approx(D, abs=1e-9)


def test_small_n_ties_and_flat_spectra():
    """Small-N rule on repeated values: no crash, the naive loop's choice (or a clean failure)."""
    for x in (np.full(12, 3.0), np.array([1.0] * 6 + [2.0] * 6), np.linspace(1, 2, 9)):
        f = ww_fit(x)
        ref = naive_ww_fit(x)
        if f.ok:
            assert f.n_tail == ref[3] and f.D == pytest.approx(ref[2], abs=1e-9)
        else:
            assert ref[2] == 1.0


def test_matches_weightwatcher_package():
    ww_powerlaw = pytest.importorskip("weightwatcher.WW_powerlaw")
    import contextlib
    import io

    rng = np.random.default_rng(7)
    for shape in [(784, 200), (200, 200), (10, 200), (300, 50)]:
        ev = esd(rng.standard_t(2.5, size=shape))
        with contextlib.redirect_stdout(io.StringIO()):
            ref = ww_powerlaw.WWFit(np.sort(ev[ev > 1e-5]))
        f = ww_fit(ev)
        assert (
            abs(f.alpha - ref.alpha) <= 1e-6
            and abs(f.D - ref.D) <= 1e-6
            and f.xmin == pytest.approx(ref.xmin)
        )


@pytest.mark.parametrize("alpha", [1.8, 2.5, 3.5, 5.0])
def test_recovers_pareto_exponent(alpha):
    """Eigenvalues drawn from a pure Pareto(alpha) density: alpha within 3 sigma."""
    rng = np.random.default_rng(int(alpha * 10))
    x = (1 - rng.random(2000)) ** (-1 / (alpha - 1))  # density ~ x^-alpha on [1, inf)
    f = ww_fit(x)
    assert abs(f.alpha - alpha) < 3 * f.sigma + 0.05, (f.alpha, f.sigma)


def test_a_wrong_fit_would_fail():
    """Guard: the Pareto test is sensitive; a fit off by 10% fails it."""
    rng = np.random.default_rng(25)
    x = (1 - rng.random(2000)) ** (-1 / 1.5)
    f = ww_fit(x)
    assert abs(1.1 * f.alpha - 2.5) > 3 * f.sigma + 0.05


@pytest.mark.parametrize("alpha", [2.5, 4.0, 6.0])
def test_powerlaw_option_recovers_pareto_exponent(alpha):
    """`--fit powerlaw` against known exponents, not against the package: powerlaw 2.x caps the
    exponent at 3 by default (DEFAULT_PARAMETER_RANGES), which would fit 4 and 6 as 2.9999."""
    rng = np.random.default_rng(int(alpha * 100))
    x = rng.pareto(alpha - 1, size=3000) + 1.0  # numpy's Pareto(a) has density ~ x^-(a+1) on [1, inf)
    f = fit_tail(x, "powerlaw")
    sigma = (alpha - 1) / np.sqrt(f.n_tail)
    assert f.n_tail >= 300
    assert abs(f.alpha - alpha) < 3 * sigma, (f.alpha, f.n_tail)


def test_powerlaw_option_matches_package_with_open_range():
    """Same numbers as the package itself once its exponent range is opened."""
    powerlaw = pytest.importorskip("powerlaw")
    rng = np.random.default_rng(3)
    ev = esd(rng.standard_t(2.0, size=(300, 100)))
    x = np.sort(ev[ev > 1e-5])
    ref = powerlaw.Fit(x, verbose=False, parameter_ranges={"alpha": [1, None]})
    f = fit_tail(ev, "powerlaw")
    assert f.alpha == pytest.approx(ref.power_law.alpha, rel=1e-9)
    assert f.xmin == pytest.approx(ref.power_law.xmin, rel=1e-12)
    assert f.D == pytest.approx(ref.power_law.D, rel=1e-9)


def test_peak_fit_restricts_xmin():
    rng = np.random.default_rng(4)
    ev = esd(rng.standard_t(3.0, size=(400, 200)))
    f = peak_fit(ev)
    x = np.sort(ev[ev > 1e-5])
    h, edges = np.histogram(np.log10(x), bins=100)
    peak = 10 ** edges[np.argmax(h)]
    assert 0.95 * peak <= f.xmin <= 1.5 * peak
    # and among those candidates it is the minimum-D one (naive check)
    cands = [i for i in range(len(x) - 1) if 0.95 * peak <= x[i] <= 1.5 * peak]
    Ds = []
    for i in cands:
        n = len(x) - i
        a = 1 + n / np.sum(np.log(x[i:] / x[i]))
        Ds.append(np.max(np.abs(1 - (x[i:] / x[i]) ** (1 - a) - np.arange(n) / n)))
    assert f.D == pytest.approx(min(Ds), abs=1e-9)


def test_eigenvalues_match_svd():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(120, 300)).astype(np.float32)
    ev = gram_eigenvalues(W)
    sv = np.linalg.svd(W.astype(np.float64), compute_uv=False)
    assert len(ev) == 120
    np.testing.assert_allclose(np.sort(ev), np.sort(sv**2), rtol=1e-9, atol=1e-9 * sv.max() ** 2)


def test_conv_weights_pool_kernel_slices():
    rng = np.random.default_rng(6)
    W = rng.normal(size=(32, 16, 3, 3))
    ev = esd(W)
    assert len(ev) == 9 * 16
    ref = np.sort(
        np.concatenate(
            [np.linalg.svd(W[:, :, i, j], compute_uv=False) ** 2 for i in range(3) for j in range(3)]
        )
    )
    np.testing.assert_allclose(ev, ref, rtol=1e-9, atol=1e-9)


def test_too_few_eigenvalues_fails_cleanly():
    assert not ww_fit(np.array([1.0])).ok
    assert not ww_fit(np.zeros(30)).ok


def test_analyze_matrix_one_layer():
    """The notebook entry point: a LayerRecord with the alpha of the fit on the ESD; traps when asked;
    NaN -> error field; the same record a scan gives the same tensor."""
    import grokwatch
    from grokwatch.records import LayerRecord
    from grokwatch.settings import Settings

    W = np.random.default_rng(11).standard_t(3, size=(300, 120))
    rec = grokwatch.analyze_matrix(W)
    assert isinstance(rec, LayerRecord)
    f = ww_fit(esd(W))
    assert (rec.alpha, rec.n_tail, rec.N, rec.M, rec.shape) == (f.alpha, f.n_tail, 300, 120, [300, 120])
    assert rec.n_traps is None and rec.error is None and rec.phase is None
    assert grokwatch.analyze_matrix(W, Settings(traps=True), "x").n_traps >= 0
    W[3, 4] = np.nan
    bad = grokwatch.analyze_matrix(W)
    assert "non-finite" in bad.error and bad.alpha is None


def test_analyze_matrix_matches_a_scan_and_takes_torch(tmp_path):
    """A torch float32 layer gives the record scan_folder gives the same tensor saved in a checkpoint."""
    import torch
    from safetensors.torch import save_file

    import grokwatch
    from grokwatch.settings import Settings

    torch.manual_seed(0)
    lin = torch.nn.Linear(300, 120)
    save_file({"fc.weight": lin.weight.detach().contiguous()}, str(tmp_path / "step_1.safetensors"))
    scanned = grokwatch.scan_folder(tmp_path, Settings(traps=True), workers=1, cache=False).records[0]
    rec = grokwatch.analyze_matrix(lin.weight, Settings(traps=True), "fc.weight")
    for name in (
        "alpha",
        "xmin",
        "D",
        "n_tail",
        "lambda_max",
        "log_norm",
        "n_traps",
        "rand_lambda_max",
        "N",
        "M",
    ):
        assert getattr(rec, name) == getattr(scanned, name), name
    assert rec.shape == [120, 300] and rec.layer == "fc.weight"


def test_fit_fields_are_plain_floats_and_csv_cells_are_numbers():
    """numpy scalars leaked into records once: CSV printed sigma as `np.float64(1.5)`."""
    from grokwatch.records import LayerRecord
    from grokwatch.report.text import to_csv

    rng = np.random.default_rng(2)
    for W in (rng.standard_t(3, size=(300, 120)), rng.standard_t(3, size=(200, 12))):  # standard, small-N
        f = ww_fit(esd(W))
        assert all(type(v) is float for v in (f.alpha, f.xmin, f.D, f.sigma))
    rec = LayerRecord(checkpoint="c", step=1, layer="l", shape=[2, 2], sigma=np.float64(1.5))
    row = to_csv([rec]).splitlines()[1].split(",")
    assert "1.5" in row and not any("np." in c for c in row)


def test_tied_largest_eigenvalues_still_fit():
    """Two equal largest eigenvalues (a bootstrap resample has many ties) make the last candidate's
    alpha infinite; its D must not be NaN (np.argmin would pick it and the fit would fail)."""
    from grokwatch.spectral.powerlaw import ww_fit

    x = np.random.default_rng(0).uniform(size=300) ** (-1 / 1.5)
    tied = ww_fit(np.append(x, x.max()))
    nudged = ww_fit(np.append(x, x.max() * (1 + 1e-9)))  # the same spectrum without the exact tie
    assert tied.ok and abs(tied.alpha - nudged.alpha) < 1e-6 and tied.n_tail == nudged.n_tail
