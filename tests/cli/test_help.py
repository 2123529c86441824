"""`--help` states every default (the man pages are made from it) and prints no type for flags."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from grokwatch.cli import app

# options that have no default because they switch an output on (the path is the value)
NO_DEFAULT = {"--html", "--markdown", "--plot", "--json", "--figures", "--esd-steps"}  # off unless given


def help_text(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    assert r.exit_code == 0, r.output
    return r.output


def option_blocks(text: str) -> dict[str, str]:
    """Option name -> its rows in the rich help panel (a row starting with `│ --name`)."""
    blocks: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"│ (--[\w-]+)", line)
        if m:
            name = m.group(1)
            blocks[name] = ""
        elif not line.startswith("│"):
            name = None
        if name:
            blocks[name] += line + "\n"
    return blocks


@pytest.mark.parametrize("command", ["scan", "traps", "report", "train"])
def test_every_value_option_shows_its_default(command):
    blocks = option_blocks(help_text(command))
    assert len(blocks) > 5
    for name, block in blocks.items():
        takes_value = re.search(r"<[^>]+>", block.splitlines()[0]) is not None
        if takes_value and name not in NO_DEFAULT:
            assert "[default:" in block, f"{command} {name} shows no default:\n{block}"


@pytest.mark.parametrize("command", [None, "scan", "traps", "report", "train"])
def test_flags_have_no_bool_placeholder(command):
    text = help_text(*([command] if command else []))
    assert "<bool>" not in text


def test_train_defaults_name_both_tasks():
    blocks = option_blocks(help_text("train"))
    assert "1e5 mnist, 3000 modadd" in blocks["--steps"]
    assert "all cores" in option_blocks(help_text("scan"))["--workers"]
