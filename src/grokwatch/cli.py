"""The `grokwatch` command: a thin typer layer over the library.

Each subcommand lives in its own `cmd_*.py` module; heavy libraries (numpy,
torch, matplotlib) are imported inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from grokwatch import __version__, cmd_scan

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
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Audit a training run's checkpoints with Heavy-Tailed Self-Regularization."""


app.command("scan")(cmd_scan.scan)

try:  # commands land one by one; a missing one must not break the others
    from grokwatch import cmd_traps

    app.command("traps")(cmd_traps.traps)
except ImportError:  # pragma: no cover
    pass
try:
    from grokwatch import cmd_report

    app.command("report")(cmd_report.report)
except ImportError:  # pragma: no cover
    pass
try:
    from grokwatch import cmd_train

    app.command("train")(cmd_train.train)
except ImportError:  # pragma: no cover
    pass


def main() -> None:
    app()


if __name__ == "__main__":
    main()
