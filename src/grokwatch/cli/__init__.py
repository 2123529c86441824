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

app = typer.Typer(
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


app.command("scan")(cmd_scan.scan)
app.command("traps")(cmd_traps.traps)
app.command("report")(cmd_report.report)
app.command("train")(cmd_train.train)
app.command("watch")(cmd_watch.watch)


def main() -> None:
    """Run the CLI; a GrokwatchError that reaches here becomes one line and its exit code."""
    try:
        app()
    except GrokwatchError as e:
        error_line(str(e))
        raise SystemExit(int(e.exit_code)) from None


if __name__ == "__main__":
    main()
