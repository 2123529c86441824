"""The CLI as a user starts it: `python -m grokwatch`, light imports, plain output when piped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mini_run"


def run(*args, **env):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", **env},
    )


def test_python_m_and_version():
    r = run("-m", "grokwatch", "--version")
    assert r.returncode == 0 and r.stdout.startswith("grokwatch ")


def test_help_and_scan_do_not_import_torch_or_matplotlib(tmp_path):
    code = (
        "import sys\nfrom grokwatch.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    for args in (["--help"], ["scan", str(FIX), "--no-cache", "-j", "1"]):
        r = run("-c", code, *args)
        assert "HEAVY []" in r.stdout, (args, r.stdout[-300:], r.stderr[-300:])


def test_piped_output_is_plain_text():
    r = run("-m", "grokwatch", "scan", str(FIX), "--no-cache", "-j", "1")
    assert r.returncode == 0
    assert "\x1b[" not in r.stdout and "step_00010000.safetensors" in r.stdout
    assert r.stderr == ""  # no progress bar when stderr is not a terminal
