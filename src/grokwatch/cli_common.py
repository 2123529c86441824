"""Pieces every subcommand shares: consoles, output formats, error lines, exit codes.

Kept free of heavy imports (numpy, torch, matplotlib) so `grokwatch --help` is fast.
"""

from __future__ import annotations

import os
import sys
from enum import Enum

import typer

from grokwatch import errors


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


def stdout_console():
    """Console for results: rich on a terminal, plain text when piped or NO_COLOR is set."""
    from rich.console import Console

    return Console(no_color="NO_COLOR" in os.environ or None, soft_wrap=False, highlight=False)


def stderr_console():
    """Console for progress and error lines, so stdout stays clean for --format json."""
    from rich.console import Console

    return Console(stderr=True, no_color="NO_COLOR" in os.environ or None, highlight=False)


def error_line(message: str) -> None:
    """One plain line on stderr, prefixed so scripts can grep it."""
    print(f"grokwatch: error: {message}", file=sys.stderr, flush=True)


def warn_line(message: str) -> None:
    print(f"grokwatch: warning: {message}", file=sys.stderr, flush=True)


def exit_with(code: int) -> None:
    raise typer.Exit(code)


def no_checkpoints(message: str) -> None:
    error_line(message)
    raise typer.Exit(errors.EXIT_NO_CHECKPOINTS)


def show_progress() -> bool:
    """Progress bars only on an interactive stderr."""
    return sys.stderr.isatty() and os.environ.get("CI") != "true"
