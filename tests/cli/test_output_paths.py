"""Output paths are checked before the work, and errors name the path the user gave.

Each case points the data argument at a folder that does not exist: checked first, the
output path fails with exit 2; checked after the work, the missing folder would exit 4.
Unwritable places that stay unwritable for root too: a missing folder, a path under a
file, a directory where a file goes, and /proc (no regular files can be created there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from grokwatch.cli import app

PROC = Path("/proc/grokwatch-test-output.html")


def run(*args) -> tuple[int, str]:
    r = CliRunner().invoke(app, [*map(str, args)], env={"NO_COLOR": "1", "GITHUB_STEP_SUMMARY": None})
    return r.exit_code, r.stderr


@pytest.fixture
def missing(tmp_path) -> Path:
    return tmp_path / "no-such-run"


def test_report_html_missing_folder(missing, tmp_path):
    target = tmp_path / "nope" / "r.html"
    code, err = run("report", missing, "--html", target)
    assert (
        code == 2 and err.strip() == f"grokwatch: error: --html {target}: no such directory: {target.parent}"
    )


def test_report_html_is_a_directory(missing, tmp_path):
    code, err = run("report", missing, "--html", tmp_path)
    assert code == 2  # typer's own check (dir_okay=False), before the scan (which would exit 4)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_report_html_unwritable_folder_names_the_path_not_a_temp_file(missing):
    code, err = run("report", missing, "--html", PROC)
    assert code == 2 and f"--html {PROC}: cannot write in /proc" in err
    assert ".tmp" not in err


def test_report_markdown_checked(missing, tmp_path):
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "r.md"
    code, err = run("report", missing, "--markdown", target)
    assert code == 2 and f"--markdown {target}:" in err


def test_traps_plot_under_a_file(missing, tmp_path):
    (tmp_path / "file").write_text("x")
    code, err = run("traps", missing, "--plot", tmp_path / "file" / "figs")
    assert code == 2 and f"--plot {tmp_path / 'file' / 'figs'}: {tmp_path / 'file'} is a file" in err


def test_train_out_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    code, err = run("train", "--task", "modadd", "--steps", "10", "--out", tmp_path / "file")
    assert code == 2 and f"--out {tmp_path / 'file'}: is a file" in err


def test_writable_paths_pass_the_check(missing, tmp_path):
    """The check itself creates nothing: a fresh --plot folder is made only by the figures."""
    code, _ = run("traps", missing, "--plot", tmp_path / "new" / "figs")
    assert code == 4 and not (tmp_path / "new").exists()
    code, _ = run("report", missing, "--html", tmp_path / "r.html")
    assert code == 4 and list(tmp_path.iterdir()) == []
