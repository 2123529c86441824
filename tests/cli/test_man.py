"""The committed man pages are exactly what tools/make_man.sh makes from the current --help texts.

On a failure: run `tools/make_man.sh` (venv active) and commit man/.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "make_man.sh"
GROKWATCH = shutil.which("grokwatch", path=str(Path(sys.executable).parent)) or shutil.which("grokwatch")

pytestmark = pytest.mark.skipif(
    shutil.which("help2man") is None or GROKWATCH is None,
    reason="help2man (apt-get install help2man) or the grokwatch script is missing",
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("man")
    env = {**os.environ, "GROKWATCH": GROKWATCH}
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_man_pages_match_help(generated):
    committed = sorted(p.name for p in (ROOT / "man").glob("*.1"))
    fresh = sorted(p.name for p in generated.glob("*.1"))
    assert fresh == committed, "man/ holds other pages than tools/make_man.sh makes: rerun it"
    assert {
        "grokwatch.1",
        "grokwatch-scan.1",
        "grokwatch-traps.1",
        "grokwatch-report.1",
        "grokwatch-train.1",
        "grokwatch-watch.1",
    } <= set(fresh)
    for name in fresh:
        old = (ROOT / "man" / name).read_text(encoding="utf-8")
        new = (generated / name).read_text(encoding="utf-8")
        if old != new:
            diff = "".join(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), f"man/{name}", f"regenerated/{name}", n=1
                )
            )
            pytest.fail(f"man/{name} is stale: run tools/make_man.sh and commit man/\n{diff[:4000]}")


def test_man_pages_render(generated):
    man = shutil.which("man")
    if man is None:
        pytest.skip("man is not installed")
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    for page in sorted(generated.glob("*.1")):
        proc = subprocess.run(
            [man, "--warnings", "-l", str(page)], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip() == "", f"{page.name}: {proc.stderr}"
        assert "NAME" in proc.stdout and "SYNOPSIS" in proc.stdout and "OPTIONS" in proc.stdout
    root = subprocess.run(
        [man, "-l", str(generated / "grokwatch.1")], env=env, capture_output=True, text=True
    )
    assert "EXIT STATUS" in root.stdout and "grokwatch-report(1)" in root.stdout


def _render(page: Path) -> str:
    """The page as a reader sees it: `man -l`, else groff (hyphens, joins and hyphenation applied)."""
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    if shutil.which("man"):
        cmd = [shutil.which("man"), "-l", str(page)]
    elif shutil.which("groff"):
        cmd = [shutil.which("groff"), "-man", "-Tutf8", "-P", "-cbou", str(page)]
    else:
        pytest.skip("neither man nor groff is installed")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _long_options(command: str | None) -> list[str]:
    import typer

    from grokwatch.cli import app

    root = typer.main.get_command(app)
    cmd = root if command is None else root.commands[command]
    ctx = cmd.context_class(cmd, info_name="grokwatch")
    opts = []
    for p in cmd.get_params(ctx):
        opts += [o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]
    return opts


@pytest.mark.parametrize("command", [None, "scan", "traps", "report", "train"])
def test_rendered_pages_show_every_option_intact(command):
    """Every `--option` of `--help` appears, hyphens and all, in the committed page as `man` shows it."""
    text = _render(ROOT / "man" / ("grokwatch.1" if command is None else f"grokwatch-{command}.1"))
    assert "\u2010" not in text  # no typographic hyphen: every '-' is one a user can type
    opts = _long_options(command)
    assert "--help" in opts and len(opts) >= 2
    for opt in opts:
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text), f"{opt} missing or broken"
    if command == "scan":
        assert "DIR/.grokwatch-cache.sqlite" in text and "log-histogram" in text and "--alpha-high." in text


@pytest.mark.slow
def test_wheel_puts_pages_where_man_finds_them(tmp_path):
    """The wheel ships man/*.1 as data files for <prefix>/share/man/man1, which man-db searches
    for every <prefix>/bin on PATH: `man grokwatch` works after `pip install .` in a venv
    (editable installs carry no data files; the README says so).

    The wheel is built and unpacked the way pip installs `.data/data/` (into the prefix),
    never installed: installing into another prefix would uninstall the test venv's grokwatch.
    """
    import zipfile

    pytest.importorskip("setuptools")
    man = shutil.which("man")
    if man is None:
        pytest.skip("man is not installed")
    wheels = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    with zipfile.ZipFile(next(wheels.glob("grokwatch-*.whl"))) as whl:
        for name in whl.namelist():
            head, sep, rest = name.partition(".data/data/")
            if sep and "/" not in head:
                (prefix / rest).parent.mkdir(parents=True, exist_ok=True)
                (prefix / rest).write_bytes(whl.read(name))
    pages = sorted(p.name for p in (prefix / "share" / "man" / "man1").glob("*.1"))
    assert pages == sorted(p.name for p in (ROOT / "man").glob("*.1"))
    env = {"PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    for page in ("grokwatch", "grokwatch-scan"):
        found = subprocess.run([man, "-w", page], env=env, capture_output=True, text=True, timeout=60)
        assert found.returncode == 0 and found.stdout.startswith(str(prefix)), found.stderr
