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

    width = None if sys.stdout.isatty() else 240  # piped: never wrap table rows
    return Console(no_color="NO_COLOR" in os.environ or None, width=width, highlight=False)


def stderr_console():
    """Console for progress and error lines, so stdout stays clean for --format json."""
    from rich.console import Console

    return Console(stderr=True, no_color="NO_COLOR" in os.environ or None, highlight=False)


def error_line(message: str) -> None:
    """One plain line on stderr, prefixed so scripts can grep it."""
    print(f"grokwatch: error: {message}", file=sys.stderr, flush=True)


def warn_line(message: str) -> None:
    print(f"grokwatch: warning: {message}", file=sys.stderr, flush=True)


def no_checkpoints(message: str) -> None:
    error_line(message)
    raise typer.Exit(errors.EXIT_NO_CHECKPOINTS)


def show_progress() -> bool:
    """Progress bars only on an interactive stderr."""
    return sys.stderr.isatty() and os.environ.get("CI") != "true"


# ---------------------------------------------------------------- options shared by scan, traps, report

from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

DirArg = Annotated[Path, typer.Argument(help="Checkpoint folder (searched recursively) or one checkpoint file.",
                                        show_default=False)]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.",
                                                 envvar="GROKWATCH_FORMAT")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-j", min=1, envvar="GROKWATCH_WORKERS",
                                                help="Worker processes [default: all cores].", show_default=False)]
CacheOpt = Annotated[bool, typer.Option("--cache/--no-cache", envvar="GROKWATCH_CACHE",
                                        help="Reuse results stored in DIR/.grokwatch-cache.sqlite.")]
CachePathOpt = Annotated[Path | None, typer.Option("--cache-path", envvar="GROKWATCH_CACHE_PATH",
                                                   help="SQLite cache file to use instead of the default.",
                                                   show_default=False)]
LayersOpt = Annotated[list[str] | None, typer.Option("--layers", "-l", help="Only layers matching this glob "
                                                     "(repeatable), e.g. 'fc*.weight'.", show_default=False)]
ExcludeOpt = Annotated[list[str] | None, typer.Option("--exclude", "-x", help="Skip layers matching this glob "
                                                      "(repeatable).", show_default=False)]
SeedOpt = Annotated[int, typer.Option("--seed", envvar="GROKWATCH_SEED", help="Seed of the element shuffles (traps).")]
ReplicasOpt = Annotated[int | None, typer.Option("--replicas", min=1, help="Shuffles per layer for traps "
                                                 "[default: 5 when the layer has < 100 eigenvalues, else 1].",
                                                 show_default=False)]
AlphaLowOpt = Annotated[float, typer.Option("--alpha-low", envvar="GROKWATCH_ALPHA_LOW",
                                            help="Phase rule: a trusted alpha below this means anti-grokking.")]
AlphaHighOpt = Annotated[float, typer.Option("--alpha-high", envvar="GROKWATCH_ALPHA_HIGH",
                                             help="Phase rule: a trusted alpha above this means pre-grokking.")]
TrapMinOpt = Annotated[int, typer.Option("--trap-min", envvar="GROKWATCH_TRAP_MIN",
                                         help="Phase rule: this many traps in one layer mean anti-grokking.")]
class PreRule(str, Enum):
    any = "any"
    all = "all"


PreRuleOpt = Annotated[PreRule, typer.Option("--pre-rule", envvar="GROKWATCH_PRE_RULE",
                                         help="Phase rule: pre-grokking when 'any' or 'all' trusted layers have "
                                         "alpha above --alpha-high.")]
MinEvalsOpt = Annotated[int, typer.Option("--min-evals", help="Phase rule: ignore layers with fewer "
                                          "eigenvalues (below 20 the fit is WeightWatcher's small-N fit).")]


def run_scan(directory: Path, settings, workers: int | None, cache: bool, cache_path: Path | None, rules):
    """scan_folder with a progress bar on an interactive stderr and one-line errors.

    Exits 4 when there are no checkpoints; bad files are printed, one line each,
    and returned in `.errors` so the command can exit 3 after printing results.
    """
    from grokwatch.errors import NoCheckpointsError
    from grokwatch.scan import scan_folder

    progress = None
    bar = None
    if show_progress():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=stderr_console(), transient=True)

        def progress(total: int):
            task = bar.add_task("scan", total=total)
            return lambda: bar.advance(task)

    try:
        if bar is not None:
            with bar:
                result = scan_folder(directory, settings, workers=workers, rules=rules, progress=progress,
                                     cache=(cache_path or True) if cache else False)
        else:
            result = scan_folder(directory, settings, workers=workers, rules=rules,
                                 cache=(cache_path or True) if cache else False)
    except NoCheckpointsError as e:
        no_checkpoints(str(e))
    for line in result.errors:
        error_line(line)
    if not result.records and result.errors:
        error_line(f"{directory}: no readable checkpoint")
    return result


def emit(result, fmt: OutputFormat, title: str, show_traps: bool = False, per_layer: bool = False) -> None:
    """Print records in the chosen format on stdout (table: one row per checkpoint, or per layer)."""
    from grokwatch import output

    if fmt == OutputFormat.json:
        sys.stdout.write(output.to_json(result.records) + "\n")
    elif fmt == OutputFormat.csv:
        sys.stdout.write(output.to_csv(result.records))
    elif fmt == OutputFormat.markdown:
        sys.stdout.write(output.to_markdown(result.records, show_traps))
    else:
        con = stdout_console()
        if not result.records:
            return
        if per_layer:
            con.print(output.layer_table(result.records, title=title))
        else:
            con.print(output.rich_table(result.records, title=title, show_traps=show_traps))


def finish(result) -> None:
    """Exit 3 when any file was bad (after everything else was printed)."""
    if result.errors:
        raise typer.Exit(errors.EXIT_BAD_INPUT)
