"""`grokwatch traps` end to end through the root typer app."""

from __future__ import annotations

import csv
import io
import json

import pytest
from helpers import write_run
from typer.testing import CliRunner

from grokwatch.cli import app
from grokwatch.report.layer_figure import plot_name
from grokwatch.report.text import TRAP_COLUMNS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["traps", *map(str, args), "-j", "1"], env={"NO_COLOR": "1", "COLUMNS": "200"})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # steps 10/100/1000: fc2 is Gaussian, Student-t(3), Student-t(1.5); fc1, fc3 Gaussian
    return write_run(tmp_path_factory.mktemp("traps") / "run")


def test_json_records(run):
    r = invoke(run, "--format", "json", "--no-cache")
    assert r.exit_code == 0, r.output
    recs = json.loads(r.stdout)
    assert len(recs) == 9  # 3 checkpoints x 3 analysable layers (the bias is skipped)
    for d in recs:
        for k in (
            "checkpoint",
            "step",
            "layer",
            "n_traps",
            "lambda_plus",
            "threshold",
            "rand_lambda_max",
            "ks_mp",
        ):
            assert k in d
        assert isinstance(d["n_traps"], int) and d["threshold"] > d["lambda_plus"] > 1
    by = {(d["step"], d["layer"]): d for d in recs}
    assert by[(1000, "fc2.weight")]["n_traps"] >= 1  # df = 1.5
    # the phase column is the default rule's label, the same as a scan with traps gives
    from grokwatch.scan import scan_folder
    from grokwatch.settings import Settings

    expected = {
        (x.step, x.layer): x.phase for x in scan_folder(run, Settings(traps=True), workers=1, cache=False)
    }
    assert {k: d["phase"] for k, d in by.items()} == expected
    assert all(by[(s, "fc1.weight")]["n_traps"] == 0 for s in (10, 100, 1000))
    assert by[(10, "fc2.weight")]["n_traps"] == 0


def test_seed_and_replicas_are_honoured(run):
    a = json.loads(invoke(run, "-f", "json", "--no-cache", "--seed", "1").stdout)
    b = json.loads(invoke(run, "-f", "json", "--no-cache", "--seed", "1").stdout)
    c = json.loads(invoke(run, "-f", "json", "--no-cache", "--seed", "2").stdout)
    assert a == b
    assert [d["rand_lambda_max"] for d in a] != [d["rand_lambda_max"] for d in c]
    one = json.loads(invoke(run, "-f", "json", "--no-cache", "--replicas", "1").stdout)
    assert [d["rand_lambda_max"] for d in one] != [d["rand_lambda_max"] for d in a]


def test_cache_reuses_results(run, tmp_path):
    cache = tmp_path / "c.sqlite"
    first = invoke(run, "-f", "json", "--cache-path", cache)
    second = invoke(run, "-f", "json", "--cache-path", cache)
    assert first.exit_code == second.exit_code == 0
    assert cache.exists() and json.loads(first.stdout) == json.loads(second.stdout)


def test_csv(run):
    r = invoke(run, "--format", "csv", "--no-cache")
    assert r.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == TRAP_COLUMNS and len(rows) == 9
    assert {row["layer"] for row in rows} == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert all(int(row["n_traps"]) >= 0 for row in rows)


def test_table_and_markdown(run):
    r = invoke(run, "--no-cache")
    assert r.exit_code == 0
    assert "grokwatch traps" in r.stdout and "fc2.weight" in r.stdout and "threshold" in r.stdout
    md = invoke(run, "-f", "markdown", "--no-cache")
    lines = md.stdout.strip().splitlines()
    assert lines[0].startswith("| step |") and len(lines) == 2 + 9


def test_plot_writes_images_for_trapped_layers(run, tmp_path):
    recs = json.loads(invoke(run, "-f", "json", "--no-cache").stdout)
    trapped = {plot_name(d["checkpoint"], d["layer"], "png") for d in recs if d["n_traps"] > 0}
    assert trapped
    out = tmp_path / "figs"
    r = invoke(run, "--no-cache", "-f", "json", "--plot", out)
    assert r.exit_code == 0
    assert {p.name for p in out.iterdir()} == trapped
    assert json.loads(r.stdout) == recs  # the figure notice goes to stderr
    for p in out.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_all_svg_is_deterministic(run, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    opts = ("--all", "--plot-format", "svg", "--layers", "fc2.*")
    assert invoke(run, "--no-cache", "--plot", a, *opts).exit_code == 0
    assert invoke(run, "--plot", b, *opts).exit_code == 0  # the second run's numbers come from the cache
    names = sorted(p.name for p in a.iterdir())
    assert len(names) == 3 and names == sorted(p.name for p in b.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def test_bad_input_exit_codes(tmp_path):
    assert invoke(tmp_path / "missing").exit_code == 4
    (tmp_path / "empty").mkdir()
    assert invoke(tmp_path / "empty").exit_code == 4
    run = write_run(tmp_path / "run", steps=(10, 100))
    (run / "step_00000050.safetensors").write_bytes(b"not a safetensors file")
    r = invoke(run, "-f", "json", "--no-cache")
    assert r.exit_code == 3
    assert len(json.loads(r.stdout)) == 6  # the good checkpoints are still reported
    assert "step_00000050.safetensors" in r.stderr


def test_scan_traps_adds_counts_and_feeds_the_phase(run):
    # the threshold rule reads one checkpoint at a time (this folder's checkpoints are unrelated draws)
    args = ["scan", str(run), "--rule", "threshold", "-f", "json", "--no-cache", "-j", "1"]
    r = runner.invoke(app, [*args, "--traps"])
    assert r.exit_code == 0, r.output
    recs = json.loads(r.stdout)
    assert all(d["n_traps"] is not None for d in recs)
    trapped = [d for d in recs if d["step"] == 1000 and d["layer"] == "fc2.weight"][0]
    assert trapped["n_traps"] >= 2
    assert trapped["phase"] == "anti-grokking" and "fc2.weight" in trapped["phase_reason"]
    plain = json.loads(runner.invoke(app, args).stdout)
    assert all(d["n_traps"] is None for d in plain)


def test_plot_without_traps_points_to_all(tmp_path):
    from helpers import make_clean_run

    run = make_clean_run(tmp_path / "clean")
    r = invoke(run, "--plot", tmp_path / "figs", "--no-cache")
    assert r.exit_code == 0, r.output
    assert "wrote 0 figures" in r.stderr and "--all draws every layer" in r.stderr
    r = invoke(run, "--plot", tmp_path / "figs", "--all", "--no-cache")
    assert "--all draws" not in r.stderr and len(list((tmp_path / "figs").glob("*.png"))) > 0
