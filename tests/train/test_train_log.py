"""`grokwatch train` in a log (stderr not a terminal): a line per checkpoint, singular/plural right."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from grokwatch.cli import app

TINY = ["train", "--task", "modadd", "--p", "11", "--width", "16", "--embed-dim", "8", "--threads", "1"]


def run(*args) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, [*TINY, *map(str, args)], env={"NO_COLOR": "1", "CI": None})
    return r.exit_code, r.stdout, r.stderr


def test_a_line_per_checkpoint(tmp_path):
    code, out, err = run("--steps", "40", "--checkpoints", "4", "--out", tmp_path / "run")
    assert code == 0, err
    written = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "run").glob("step_*.safetensors"))
    logged = [int(m.replace(",", "")) for m in re.findall(r"^step ([\d,]+)/40: train acc", err, re.M)]
    assert logged == written and len(written) >= 3
    assert f"{len(written)} checkpoints written to" in out


def test_one_checkpoint_is_singular(tmp_path):
    code, out, err = run("--steps", "3", "--checkpoints", "4", "--out", tmp_path / "run")
    assert code == 0, err
    code, out, err = run("--steps", "5", "--checkpoints", "4", "--out", tmp_path / "run")  # resume: 1 new
    assert code == 0, err
    assert "1 checkpoint written to" in out and "1 checkpoints" not in out
