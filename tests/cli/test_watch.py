"""`grokwatch watch` through the CLI: plain lines, JSONL, --exit-on, --on-alert, annotations, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from helpers import make_anti_run, make_clean_run
from typer.testing import CliRunner

from grokwatch.cli import app

ENV = {"GITHUB_ACTIONS": None, "GITHUB_STEP_SUMMARY": None, "CI": "true"}
FAST = ["--settle", "0.2", "--poll", "0.05"]


def watch(*args, env=None):
    return CliRunner().invoke(app, ["watch", *map(str, args), *FAST], env={**ENV, **(env or {})})


def test_plain_lines_then_idle_exit(tmp_path):
    run = make_anti_run(tmp_path / "run")
    r = watch(run, "--idle-exit", "0.3")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.stdout.splitlines() if x.startswith("step ")]
    assert [x.split()[1] for x in lines] == ["0", "10", "100", "1,000", "10,000", "100,000"]
    assert "anti-grokking" in lines[-1] and "pre-grokking" in lines[0]
    # the same labels as report, and report afterwards is served from the cache
    from grokwatch.scan import scan_folder
    from grokwatch.settings import Settings

    res = scan_folder(run, Settings(traps=True), workers=1)
    assert res.computed == 0
    phases = {r.step: r.phase for r in res.records}
    for line in lines:
        step = int(line.split()[1].replace(",", ""))
        assert f"  {phases[step]}  " in line


def test_jsonl(tmp_path):
    run = make_clean_run(tmp_path / "run")
    r = watch(run, "--format", "jsonl", "--until", "2")
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert {(d["step"], d["layer"]) for d in recs} == {
        (s, layer) for s in (1, 2) for layer in ("fc1.weight", "fc2.weight")
    }
    assert all(d["phase"] and d["alpha"] > 0 for d in recs)


def test_exit_on_anti(tmp_path):
    run = make_anti_run(tmp_path / "run")
    r = watch(run, "--exit-on", "anti-grokking", "--idle-exit", "5")
    assert r.exit_code == 1
    assert "--exit-on anti-grokking: step 100,000" in r.stderr
    r = watch(run, "--exit-on", "trap", "--idle-exit", "5")
    assert r.exit_code == 1 and "step 1,000" in r.stderr  # the first checkpoint with a trap
    assert r.stdout.count("\nstep ") + r.stdout.startswith("step ") == 4


def test_on_alert_and_annotations(tmp_path):
    run = make_anti_run(tmp_path / "run")
    log = tmp_path / "alerts.txt"
    cmd = (
        f"{sys.executable} -c \"import os; open({str(log)!r}, 'a').write("
        "'|'.join(os.environ[k] for k in ('GROKWATCH_CHECKPOINT', 'GROKWATCH_STEP', 'GROKWATCH_LEVEL', "
        "'GROKWATCH_REASON')) + '\\n')\""
    )
    r = watch(run, "--on-alert", cmd, "--idle-exit", "0.3", env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 0, r.output
    rows = [x.split("|") for x in log.read_text().splitlines()]
    assert len(rows) == 1
    path, step, level, reason = rows[0]
    assert Path(path) == run / "step_00100000.safetensors" and step == "100000"
    assert level == "anti-grokking" and "5 traps, model norm +" in reason
    warnings = [x for x in r.stdout.splitlines() if x.startswith("::warning")]
    assert len(warnings) == 1 and "step 100,000" in warnings[0]
    # --alert-on trap: every checkpoint with a trap runs it too
    log.unlink()
    r = watch(run, "--on-alert", cmd, "--alert-on", "trap", "--idle-exit", "0.3")
    assert [x.split("|")[1] for x in log.read_text().splitlines()] == ["1000", "10000", "100000"]


def test_missing_folder_waits_then_idle_exit(tmp_path):
    r = watch(tmp_path / "not-yet", "--idle-exit", "0.3")
    assert r.exit_code == 0
    assert "waiting for" in r.stderr and "not-yet" in r.stderr


def test_broken_file_exit_3(tmp_path):
    run = make_clean_run(tmp_path / "run")
    (run / "step_00000009.safetensors").write_bytes(b"\xff" * 40)
    r = watch(run, "--idle-exit", "0.5")
    assert r.exit_code == 3
    assert r.stderr.count("step_00000009.safetensors") == 1
    assert r.stdout.count("step_0000000") == 2


def test_train_watch_prints_each_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "--task",
        "modadd",
        "--steps",
        "60",
        "--p",
        "13",
        "--checkpoints",
        "4",
        "--out",
        out,
        "--watch",
    ]
    r = CliRunner().invoke(app, list(map(str, args)), env=ENV)
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in out.glob("step_*.safetensors"))
    lines = [x for x in r.stdout.splitlines() if x.startswith("step ")]
    assert sorted(x.split()[2] for x in lines) == written  # every checkpoint once, the last one included


def test_transformer_caveat_once_on_stderr_and_in_the_live_view(tmp_path):
    """Attention layers: the phase rules are unvalidated there (measured false alarms), and watch's
    alerts act on them, so watch says so once; an MLP run gets no caveat."""
    from helpers import llama_block

    from grokwatch.monitor.live import CheckpointState
    from grokwatch.monitor.view import LiveView, caveat
    from grokwatch.phases.labels import TRANSFORMER_CAVEAT
    from grokwatch.records import LayerRecord

    r = watch(llama_block(tmp_path / "llama"), "--idle-exit", "0.3")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("caveat:") == 1 and f"4 {TRANSFORMER_CAVEAT}" in r.stderr
    assert "caveat" not in watch(make_clean_run(tmp_path / "mlp"), "--until", "2").stderr

    def state(layer: str) -> CheckpointState:
        rec = LayerRecord(checkpoint="c", step=1, layer=layer, shape=[10, 10])
        return CheckpointState(rel="c", path=tmp_path / "c", step=1, records=[rec], cached=False)

    assert caveat([state("blocks.0.attn.qkv.weight")]) == f"1 {TRANSFORMER_CAVEAT}"
    assert caveat([state("fc1.weight")]) is None
    from rich.console import Console

    console = Console(width=80, record=True)
    view = LiveView(tmp_path)
    view.run = type("Run", (), {"ordered": [state("blocks.0.attn.qkv.weight")]})()
    console.print(view)
    assert "caveat: 1 attention layers" in " ".join(console.export_text().split())
