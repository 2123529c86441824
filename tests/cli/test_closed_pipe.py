"""A reader that closes stdout early (`| head -1`) never costs a file output or the exit code.

Real processes and real pipes: the read end is closed before grokwatch writes its first byte,
so every write to stdout fails with EPIPE, deterministically.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_run

SRC = Path(__file__).resolve().parents[2] / "src"


def closed_stdout(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    env.pop("GITHUB_STEP_SUMMARY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "grokwatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    proc.stdout.close()  # the reader is gone before the first write
    err = proc.stderr.read().decode()
    proc.wait(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, "", err)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("pipe") / "run")


def test_report_html_written_and_exit_0(run, tmp_path):
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    r = closed_stdout("report", str(run), "--html", str(html), "--markdown", str(md), "-j", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert md.read_text(encoding="utf-8").startswith("### grokwatch report")


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "{run}", "-j", "1"],
        ["scan", "{run}", "-j", "1", "--format", "json"],
        ["scan", "{run}", "-j", "1", "--per-layer"],
        ["traps", "{run}", "-j", "1", "--format", "csv"],
        ["report", "{run}", "-j", "1", "--markdown", "-"],
        ["--version"],
        ["scan", "--help"],
    ],
    ids=lambda a: " ".join(x for x in a if x not in ("{run}", "-j", "1")),
)
def test_every_command_exits_as_usual(run, tmp_path, args):
    r = closed_stdout(*[a.replace("{run}", str(run)) for a in args], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_traps_plot_written(run, tmp_path):
    r = closed_stdout("traps", str(run), "-j", "1", "--plot", str(tmp_path / "figs"), "--all", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "figs").glob("*.png"))) == 9


def test_exit_code_kept_on_findings(run, tmp_path):
    """A closed pipe changes nothing else: --fail-on still exits 1 (the run has anti-grokking)."""
    r = closed_stdout("report", str(run), "-j", "1", "--fail-on", "trap", cwd=tmp_path)
    assert r.returncode == 1 and "grokwatch: error: --fail-on trap" in r.stderr


@pytest.mark.slow
def test_train_checkpoints_written(tmp_path):
    out = tmp_path / "modadd"
    args = [
        "train",
        "--task",
        "modadd",
        "--p",
        "11",
        "--steps",
        "20",
        "--checkpoints",
        "3",
        "--out",
        str(out),
    ]
    r = closed_stdout(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list(out.glob("step_*.safetensors"))) >= 3
