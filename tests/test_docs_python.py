"""The Python snippets of docs/ run as written, against a small generated run at the path they use."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from helpers import make_anti_run

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def run_blocks(path: Path, skip: str | None = None) -> str:
    """Execute the doc's python blocks in order, in one namespace (a notebook); return what they print.

    skip: blocks that contain this text are left out (an optional extra that is not installed)."""
    blocks = [b for b in python_blocks(path) if skip is None or skip not in b]
    assert blocks, f"{path.name} has no python blocks"
    ns: dict = {"__name__": "__doc__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for i, code in enumerate(blocks):
            exec(compile(code, f"{path.name}[block {i}]", "exec"), ns)
    return out.getvalue()


@pytest.fixture
def in_run(tmp_path, monkeypatch) -> Path:
    """A cwd holding runs/mnist: 6 checkpoints with accuracy, a planted trap, heavy tails at the end."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    make_anti_run(tmp_path / "runs" / "mnist")
    return tmp_path


def test_python_md_runs(in_run):
    import matplotlib

    matplotlib.use("Agg")
    import importlib.util

    has_dask = importlib.util.find_spec("distributed") is not None  # the [dask] extra (CI installs it)
    out = run_blocks(DOCS / "python.md", skip=None if has_dask else "from distributed import")
    # the outputs the page shows in its comments
    assert "ScanResult('runs/mnist': 6 checkpoints, 2 layers, 0 errors)" in out
    assert "fit='WW' is not one of: ww, peak, powerlaw" in out
    assert "anti-grokking" in out  # rep.level of this run
    assert ("True" in out.splitlines()) == has_dask  # the LocalCluster scan gave the same records
    assert out.splitlines()[-1].startswith("1 ")  # find_traps: one trap from the constant offset
    assert (in_run / "alpha.png").stat().st_size > 1000


def test_report_md_library_block_runs(in_run):
    run_blocks(DOCS / "report.md")
    assert "<html" in (in_run / "report.html").read_text(encoding="utf-8")


def test_every_doc_with_python_is_tested():
    tested = {"python.md", "report.md"}
    # watch.md shows calls inside the reader's own training loop (model, loader, trainer are theirs);
    # tests/callbacks run those same calls on real Lightning, Trainer and plain-PyTorch loops
    sketches = {"watch.md"}
    assert {p.name for p in DOCS.glob("*.md") if python_blocks(p)} == tested | sketches
