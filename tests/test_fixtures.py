"""The committed fixtures are reproducible and their numbers do not drift."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from grokwatch.scan import scan_folder
from grokwatch.settings import Settings

FIX = Path(__file__).resolve().parent.parent / "fixtures"
sys.path.insert(0, str(FIX))
import make_fixtures  # noqa: E402


def test_generator_is_reproducible(tmp_path):
    """Same tensors and metadata (safetensors orders its metadata map freely, so not bytes)."""
    import numpy as np
    from safetensors import safe_open

    make_fixtures.make_mini_run(tmp_path)
    for f in sorted((FIX / "mini_run").glob("*.safetensors")):
        with safe_open(str(f), "np") as a, safe_open(str(tmp_path / f.name), "np") as b:
            assert a.metadata() == b.metadata()
            assert sorted(a.keys()) == sorted(b.keys())
            for k in a.keys():
                np.testing.assert_array_equal(a.get_tensor(k), b.get_tensor(k))


def test_alpha_regression_guard():
    want = json.loads((FIX / "mini_run.expected.json").read_text())
    got = scan_folder(FIX / "mini_run", Settings(), workers=1, cache=False).records
    assert len(got) == len(want) == 12
    for g, w in zip(got, want, strict=True):
        assert (g.step, g.layer, g.n_tail) == (w["step"], w["layer"], w["n_tail"])
        assert g.alpha == pytest.approx(w["alpha"], abs=1e-9)
        assert g.xmin == pytest.approx(w["xmin"], rel=1e-12)
        assert g.D == pytest.approx(w["D"], abs=1e-9)
    fc2 = [g.alpha for g in got if g.layer == "fc2.weight"]
    assert fc2[-1] < 2.5 < fc2[0]  # heavier tails, smaller alpha
