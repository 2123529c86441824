"""The README's quick start is two commands, each a script in the repo, and its examples use only
run folders that a README command creates."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_two_commands_install_and_run():
    cmds = quick_start_commands()
    assert cmds == ["bash tools/quickstart.sh", "bash tools/test.sh"]
    for cmd in cmds:
        script = ROOT / cmd.split()[1]
        assert script.is_file()
        if shutil.which("bash"):
            assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_ci_runs_the_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "tools/test.sh" in ci


def test_examples_use_runs_the_readme_creates():
    created = set(re.findall(r"--out (runs/[\w.-]+)", README))
    created |= set(re.findall(r"--out (runs/[\w.-]+)", (ROOT / "tools" / "quickstart.sh").read_text()))
    used = set(re.findall(r"(?<![\w/])(runs/[\w.-]+)", README)) - {p + "/report.html" for p in created}
    used = {u for u in used if not u.endswith(".html")}
    assert used <= created, f"README uses {sorted(used - created)} which no README command creates"


@pytest.mark.parametrize("word", ["CPU", "download.pytorch.org/whl/cpu"])
def test_says_what_varies_and_how_to_get_cpu_torch(word):
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert word in quick
