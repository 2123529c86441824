"""The process's surroundings, read in one place: streams, terminals, colour, CI variables.

Commands receive an `Environment` instead of calling `isatty()` or reading
`NO_COLOR` / `CI` / `GITHUB_*` at scattered call sites; tests build one with the
values they want.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO

__all__ = ["Environment"]

# Piped output: tables at their natural width (one line per row, for grep/awk), never folded.
PIPED_WIDTH = 10_000


class _RstripLines:
    """A text stream that drops trailing spaces from every line: rich pads table cells and
    centred captions to the table's width, which is noise in a file or a pipe."""

    def __init__(self, stream: IO):
        self._stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            self._stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._stream.write(self._partial)
            self._partial = ""
        self._stream.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"


def _isatty(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Environment:
    stdout: IO = field(default_factory=lambda: sys.stdout)
    stderr: IO = field(default_factory=lambda: sys.stderr)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def stdout_isatty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_isatty(self) -> bool:
        return _isatty(self.stderr)

    @property
    def no_color(self) -> bool:
        return "NO_COLOR" in self.environ

    @property
    def ci(self) -> bool:
        return self.environ.get("CI") == "true"

    @property
    def github_actions(self) -> bool:
        return self.environ.get("GITHUB_ACTIONS") == "true"

    @property
    def step_summary(self) -> str | None:
        """The file GitHub Actions shows as the job summary, when set."""
        return self.environ.get("GITHUB_STEP_SUMMARY") or None

    @property
    def show_progress(self) -> bool:
        """Progress bars only on an interactive stderr, never in CI logs."""
        return self.stderr_isatty and not self.ci

    def stdout_console(self):
        """Console for results: rich on a terminal, plain text when piped or NO_COLOR is set."""
        from rich.console import Console

        if self.stdout_isatty:
            return Console(file=self.stdout, no_color=self.no_color or None, highlight=False)
        return Console(
            file=_RstripLines(self.stdout), no_color=self.no_color or None, width=PIPED_WIDTH, highlight=False
        )

    def stderr_console(self):
        """Console for progress and error lines, so stdout stays clean for --format json."""
        from rich.console import Console

        return Console(file=self.stderr, no_color=self.no_color or None, highlight=False)
