"""The `grokwatch` command: a thin typer layer over the library.

One module per subcommand (`scan`, `traps`, `report`, `train`, `watch`), shared options in
`options`, shared helpers in `common`. Heavy libraries (numpy, torch, matplotlib)
are imported inside the commands, so `--help` stays fast. `main` is the one place
that turns grokwatch's exceptions into exit codes (`grokwatch.errors.ExitCode`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from grokwatch import __version__
from grokwatch.cli import report as cmd_report
from grokwatch.cli import scan as cmd_scan
from grokwatch.cli import train as cmd_train
from grokwatch.cli import traps as cmd_traps
from grokwatch.cli import watch as cmd_watch
from grokwatch.cli.common import error_line
from grokwatch.errors import GrokwatchError

__all__ = ["app", "main"]


def _flags_without_placeholder(params):
    """A flag takes no value: typer's rich help would still print a `<bool>` type for it."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


class _Command(typer.core.TyperCommand):
    def get_params(self, ctx):
        return _flags_without_placeholder(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx):
        return _flags_without_placeholder(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
    name="grokwatch",
    help="Audit a training run's checkpoints with Heavy-Tailed Self-Regularization: power-law alpha per "
    "layer, correlation traps, and grokking / anti-grokking phase labels, from the weights alone.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"grokwatch {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Audit a training run's checkpoints with Heavy-Tailed Self-Regularization."""


app.command("scan", cls=_Command)(cmd_scan.scan)
app.command("traps", cls=_Command)(cmd_traps.traps)
app.command("report", cls=_Command)(cmd_report.report)
app.command("train", cls=_Command)(cmd_train.train)
app.command("watch", cls=_Command)(cmd_watch.watch)


class _ClosedPipeSafe:
    """sys.stdout that survives a reader closing the pipe (`grokwatch report R --html F | head -1`).

    The first BrokenPipeError points file descriptor 1 at /dev/null (Python's documented
    SIGPIPE recipe) and the command carries on: files it was asked to write are still written
    and its exit code is its own. Output nobody reads is not an error.
    """

    def __init__(self, stream):
        self._stream = stream

    def _closed(self) -> None:
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._closed()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed()
            self._stream.flush()  # what was buffered now goes to /dev/null

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main() -> None:
    """Run the CLI; a GrokwatchError that reaches here becomes one line and its exit code.

    A closed stdout pipe is not an error (see `_ClosedPipeSafe`)."""
    import sys

    if not isinstance(sys.stdout, _ClosedPipeSafe) and hasattr(sys.stdout, "fileno"):
        sys.stdout = _ClosedPipeSafe(sys.stdout)
    try:
        app()
    except GrokwatchError as e:
        error_line(str(e))
        raise SystemExit(int(e.exit_code)) from None
    finally:
        sys.stdout.flush()


if __name__ == "__main__":
    main()
