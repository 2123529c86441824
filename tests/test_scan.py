"""scan end to end: library API, pool, cache, output formats, bad input through the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3

import numpy as np
import pytest
import torch
from helpers import mlp_weights, write_run
from safetensors.numpy import save_file
from typer.testing import CliRunner

import grokwatch
from grokwatch.checkpoints.cache import CACHE_NAME
from grokwatch.cli import app
from grokwatch.report.model import build_report
from grokwatch.settings import PhaseRules, Settings

runner = CliRunner()
KEYS = {"checkpoint", "step", "layer", "shape", "alpha", "xmin", "D", "n_tail", "lambda_max", "phase"}


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", **(env or {})})


def test_library_api(run_dir):
    res = grokwatch.scan_folder(run_dir, workers=1, cache=False)
    assert [c.step for c in res.checkpoints] == [10, 100, 1000]
    assert {r.layer for r in res.records} == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert all(r.phase for r in res.records)
    assert res[0].alpha == res.records[0].alpha and len(res) == 9 and list(res) == res.records
    # heavier fc2 tails give smaller alpha: t(1.5) < gaussian
    fc2 = {r.step: r.alpha for r in res.records if r.layer == "fc2.weight"}
    assert fc2[1000] < 2 < fc2[10]


def test_workers_give_identical_results(run_dir, monkeypatch):
    import grokwatch.pool

    monkeypatch.setattr(grokwatch.pool, "POOL_START_S", 0.0)  # force a real pool even for tiny work
    one = grokwatch.scan_folder(run_dir, workers=1, cache=False)
    two = grokwatch.scan_folder(run_dir, Settings(traps=False), workers=2, cache=False)
    assert [r.to_dict() for r in one.records] == [r.to_dict() for r in two.records]


def test_pool_is_kept_between_scans_and_results_match(tmp_path, monkeypatch):
    import grokwatch.pool as pool

    d = write_run(tmp_path / "run", steps=tuple(range(1, 12)))
    monkeypatch.setattr(pool, "POOL_START_S", 0.0)
    pool.shutdown()
    try:
        a = grokwatch.scan_folder(d, workers=2, cache=False)
        ex = pool._pool[1]
        b = grokwatch.scan_folder(d, workers=2, cache=False)
        assert pool._pool[1] is ex  # warm pool reused, no second start-up
        c = grokwatch.scan_folder(d, workers=1, cache=False)
        assert [r.to_dict() for r in a] == [r.to_dict() for r in b] == [r.to_dict() for r in c]
    finally:
        pool.shutdown()
    assert pool._pool is None


def test_cache_hit_miss_invalidation_and_corruption(tmp_path):
    d = write_run(tmp_path / "run", steps=(1, 2))
    first = grokwatch.scan_folder(d, workers=1)
    assert first.computed == 2 and (d / CACHE_NAME).exists()
    again = grokwatch.scan_folder(d, workers=1)
    assert again.computed == 0
    assert [r.to_dict() for r in again.records] == [r.to_dict() for r in first.records]
    write_run(d, steps=(3,), seed=5)  # one new checkpoint: only it is computed
    assert grokwatch.scan_folder(d, workers=1).computed == 1
    # a rewritten file (new size/mtime) is recomputed
    save_file(
        mlp_weights(np.random.default_rng(9)), str(d / "step_00000001.safetensors"), metadata={"step": "1"}
    )
    os.utime(d / "step_00000001.safetensors", ns=(1, 1))
    assert grokwatch.scan_folder(d, workers=1).computed == 1
    # other settings are a miss
    assert grokwatch.scan_folder(d, Settings(fit="peak"), workers=1).computed == 3
    # a corrupt cache is rebuilt, never trusted
    (d / CACHE_NAME).write_bytes(b"garbage" * 100)
    res = grokwatch.scan_folder(d, workers=1)
    assert res.computed == 3 and len(res.records) == 9
    sqlite3.connect(d / CACHE_NAME).execute("SELECT count(*) FROM layers").fetchone()
    # a tampered row count is a miss, not a short result
    db = sqlite3.connect(d / CACHE_NAME)
    db.execute("DELETE FROM layers WHERE rowid = (SELECT min(rowid) FROM layers)")
    db.commit()
    db.close()
    assert grokwatch.scan_folder(d, workers=1).computed == 1


def test_scan_result_repr_and_rules(run_dir, tmp_path):
    res = grokwatch.scan_folder(run_dir, workers=1, cache=False)
    assert repr(res) == f"ScanResult({str(run_dir)!r}: 3 checkpoints, 3 layers, 0 errors)"
    (run_dir / "broken.safetensors").write_bytes(b"not a checkpoint")
    bad = grokwatch.scan_folder(run_dir, workers=1, cache=False)
    assert repr(bad).endswith("3 checkpoints, 3 layers, 1 errors)")
    # the rules a result was labelled with travel with it into the report
    assert res.rules == PhaseRules()
    lax = grokwatch.scan_folder(run_dir, workers=1, cache=False, rules=PhaseRules(alpha_low=1.0))
    assert lax.rules == PhaseRules(alpha_low=1.0)
    lax_rep = build_report(lax)
    assert lax_rep.rules == lax.rules and lax_rep.over_correlated is None  # fc2's 1.61 >= 1
    assert build_report(res).over_correlated.step == 1000  # 1.61 < 2 with the default rules
    assert build_report(lax, PhaseRules()).over_correlated.step == 1000  # explicit rules still win


def test_scan_result_dataframes_match_csv(run_dir):
    """to_pandas() holds what `scan --format csv` prints; alpha_table and phases are views of the records."""
    import pandas as pd

    from grokwatch.records import COLUMNS

    res = grokwatch.scan_folder(run_dir, workers=1, cache=False)
    df = res.to_pandas()
    assert list(df.columns) == COLUMNS and len(df) == 9
    out = invoke("scan", run_dir, "-j", 1, "--no-cache", "-f", "csv").stdout
    cli = pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])
    assert list(cli.columns) == list(df.columns)
    for c in COLUMNS:
        ours, theirs = df[c].tolist(), cli[c].tolist()
        for a, b in zip(ours, theirs, strict=True):
            if a is None or a is pd.NA or (isinstance(a, float) and np.isnan(a)):
                assert b is None or (isinstance(b, float) and np.isnan(b)), (c, a, b)
            else:
                assert a == b, (c, a, b)
    assert df.loc[0, "shape"] == "100x200" and df["step"].dtype == "Int64"

    table = res.alpha_table()
    assert table.index.tolist() == [10, 100, 1000] and table.index.name == "step"
    assert table.columns.tolist() == ["fc1.weight", "fc2.weight", "fc3.weight"]
    for r in res.records:
        assert table.loc[r.step, r.layer] == r.alpha
    assert table.loc[1000, "fc2.weight"] < 2 < table.loc[10, "fc2.weight"]

    ph = res.phases()
    assert ph.columns.tolist() == ["step", "checkpoint", "phase", "phase_reason", "train_acc", "test_acc"]
    assert ph.step.tolist() == [10, 100, 1000]
    for row in ph.itertuples():
        recs = [r for r in res.records if r.checkpoint == row.checkpoint]
        assert len(recs) == 3 and {(r.phase, r.phase_reason) for r in recs} == {(row.phase, row.phase_reason)}
    assert ph.train_acc.isna().all()


def test_cli_table_json_csv_markdown(run_dir):
    r = invoke("scan", run_dir, "--workers", 1, "--no-cache")
    assert r.exit_code == 0, r.output
    # one row per checkpoint: its step, its fc2 alpha and its phase (the library's, last cell)
    res = grokwatch.scan_folder(run_dir, workers=1, cache=False)
    assert "α fc2" in r.output  # the shared ".weight" is dropped from the headers
    for ck in res.checkpoints:
        rec = next(x for x in res.records if x.checkpoint == ck.rel and x.layer == "fc2.weight")
        row = next(line.split() for line in r.output.splitlines() if ck.rel in line)
        assert row[0] == str(ck.step) and row[-1] == rec.phase
        assert row[3].rstrip("?") == f"{rec.alpha:.2f}"
    r = invoke("scan", run_dir, "-j", 1, "--format", "json")
    recs = json.loads(r.stdout)
    assert len(recs) == 9 and KEYS <= set(recs[0])
    assert recs[0]["shape"] == [100, 200]
    r = invoke("scan", run_dir, "-j", 1, "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 9 and KEYS <= set(rows[0])
    assert float(rows[0]["alpha"]) == pytest.approx(recs[0]["alpha"], rel=1e-15)
    r = invoke("scan", run_dir, "-j", 1, "-f", "markdown")
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 + 3 and lines[1].startswith("|---")


def test_cli_per_layer_table(run_dir):
    r = invoke("scan", run_dir, "-j", 1, "--no-cache", "--per-layer")
    assert r.exit_code == 0
    body = [line for line in r.stdout.splitlines() if "weight" in line]
    assert len(body) == 9 and "n_tail" in r.stdout


def test_cli_env_var_and_fit_option(run_dir):
    r = invoke(
        "scan", run_dir, "-j", 1, "--no-cache", env={"GROKWATCH_FORMAT": "json", "GROKWATCH_FIT": "peak"}
    )
    assert r.exit_code == 0
    assert {x["fit"] for x in json.loads(r.stdout)} == {"peak"}


def test_bad_files_exit_3_and_rest_is_printed(run_dir):
    (run_dir / "step_00000005.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    good = run_dir / "step_00000001.safetensors"
    data = (run_dir / "step_00000010.safetensors").read_bytes()
    (run_dir / "step_00000002.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    torch.save({"fc.weight": torch.zeros(20, 20), "f": os.getcwd}, run_dir / "step_7.pt")  # unsafe global
    (run_dir / "step_8.pt").write_bytes(b"PK\x03\x04 not a zip")
    assert not good.exists()
    r = invoke("scan", run_dir, "-j", 1, "--no-cache", "-f", "json")
    assert r.exit_code == 3
    assert len(json.loads(r.stdout)) == 9  # the three good checkpoints are all there
    errs = [line for line in r.stderr.splitlines() if line]
    assert len(errs) == 4 and all(line.startswith("grokwatch: error: ") for line in errs)
    joined = "\n".join(errs)
    assert "step_00000005.safetensors" in joined and "step_00000002.safetensors: truncated" in joined
    assert "step_7.pt: unsafe pickle" in joined and "step_8.pt: corrupt or unreadable" in joined
    assert "Traceback" not in r.output


def test_nan_layer_is_an_error_field_not_a_crash(tmp_path):
    w = mlp_weights(np.random.default_rng(0))
    w["fc2.weight"][3, 4] = np.nan
    save_file(w, str(tmp_path / "step_1.safetensors"))
    r = invoke("scan", tmp_path, "-j", 1, "--no-cache", "-f", "json")
    assert r.exit_code == 0
    recs = {x["layer"]: x for x in json.loads(r.stdout)}
    assert "NaN" in recs["fc2.weight"]["error"] and recs["fc2.weight"]["alpha"] is None
    assert recs["fc1.weight"]["alpha"] is not None
    assert invoke("scan", tmp_path, "-j", 1, "--no-cache").exit_code == 0


def test_missing_empty_and_usage(tmp_path):
    r = invoke("scan", tmp_path / "nope")
    assert r.exit_code == 4 and "no such file" in r.stderr
    r = invoke("scan", tmp_path)
    assert r.exit_code == 4 and "no checkpoints" in r.stderr
    assert invoke("scan", tmp_path, "--fit", "bogus").exit_code == 2
    assert invoke("scan", tmp_path, "--workers", 0).exit_code == 2
    assert invoke("scan").exit_code == 2


def test_report_never_assumes_checkpoint_order(run_dir):
    from grokwatch.report.model import build_report

    res = grokwatch.scan_folder(run_dir, workers=1, cache=False)
    in_order = build_report(res)
    res.checkpoints.reverse()  # a hand-built or merged ScanResult need not be sorted
    res.records.reverse()
    shuffled = build_report(res)
    assert [v.step for v in shuffled.checkpoints] == [v.step for v in in_order.checkpoints] == [10, 100, 1000]
