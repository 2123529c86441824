"""Pieces every subcommand shares: the scan with its progress bar, output, error lines, exit codes.

Kept free of heavy imports (numpy, torch, matplotlib) so `grokwatch --help` is fast.
Streams, terminals and CI variables come from one `Environment`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from grokwatch.cli.options import OutputFormat
from grokwatch.environment import Environment
from grokwatch.errors import ExitCode

__all__ = [
    "check_device",
    "emit",
    "environment",
    "error_line",
    "finish",
    "no_checkpoints",
    "run_scan",
    "show_progress",
    "stderr_console",
    "stdout_console",
    "warn_line",
]


def environment() -> Environment:
    """The Environment of this process, read afresh (tests change streams and variables)."""
    return Environment()


def stdout_console():
    return environment().stdout_console()


def stderr_console():
    return environment().stderr_console()


def show_progress() -> bool:
    return environment().show_progress


def error_line(message: str) -> None:
    """One plain line on stderr, prefixed so scripts can grep it."""
    print(f"grokwatch: error: {message}", file=sys.stderr, flush=True)


def warn_line(message: str) -> None:
    print(f"grokwatch: warning: {message}", file=sys.stderr, flush=True)


def _probe_dir(folder: Path) -> str | None:
    """Why a file cannot be created in `folder` (None: it can). A real create, not os.access,
    which says yes to root even on a read-only filesystem."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None


def check_output_file(path: Path, option: str) -> None:
    """Exit 2 before any work when `option PATH` cannot be written, naming the path given.

    A report or figure that fails after a long scan wastes the scan; a message that
    names a hidden temp file sends the user looking for the wrong file.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        problem = "is a directory"
    elif not folder.is_dir():
        problem = f"no such directory: {folder}"
    else:
        problem = _probe_dir(folder)
        problem = f"cannot write in {folder}: {problem}" if problem else None
    if problem:
        error_line(f"{option} {path}: {problem}")
        raise typer.Exit(ExitCode.USAGE)


def check_output_dir(path: Path, option: str) -> None:
    """Exit 2 before any work when folder `path` cannot be created or written into."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = "is a file" if existing == path else f"{existing} is a file"
    else:
        problem = _probe_dir(existing)
        if problem and existing != path:
            problem = f"cannot create it in {existing}: {problem}"
    if problem:
        error_line(f"{option} {path}: {problem}")
        raise typer.Exit(ExitCode.USAGE)


def no_checkpoints(message: str) -> None:
    error_line(message)
    raise typer.Exit(ExitCode.NO_CHECKPOINTS)


def check_device(device) -> None:
    """Exit 2 with one line, before any work, when `--device cuda` names a device that is not there."""
    from grokwatch.device import resolve_device
    from grokwatch.errors import DeviceError

    try:
        resolve_device(device)
    except DeviceError as e:
        error_line(str(e))
        raise typer.Exit(e.exit_code) from None


def run_scan(
    directory: Path,
    settings,
    workers: int | None,
    cache: bool,
    cache_path: Path | None,
    rules,
    scheduler: object = None,
    device=None,
):
    """scan_folder with a progress bar on an interactive stderr and one-line errors.

    Exits 4 when there are no checkpoints, 2 for a device that is not there; bad
    files are printed, one line each, and returned in `.errors` so the command
    can exit 3 after printing results. A --scheduler that cannot be used is one
    line and exit 5 (2 for a malformed address). `scheduler`: a --scheduler value, or one shared
    by several runs (`cli.runs.scan_runs`). `device` None: the library's default.
    """
    from grokwatch.errors import GrokwatchError, NoCheckpointsError
    from grokwatch.scan import scan_folder

    if device is not None:
        check_device(device)
    extra = {"scheduler": scheduler} | ({} if device is None else {"device": device})

    progress = None
    bar = None
    if show_progress():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("analysing"),  # checkpoints, or layers when a scan is split by layer
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr_console(),
            transient=True,
        )

        def progress(total: int):
            task = bar.add_task("scan", total=total)
            return lambda: bar.advance(task)

    try:
        if bar is not None:
            with bar:
                result = scan_folder(
                    directory,
                    settings,
                    workers=workers,
                    rules=rules,
                    progress=progress,
                    cache=(cache_path or True) if cache else False,
                    **extra,
                )
        else:
            result = scan_folder(
                directory,
                settings,
                workers=workers,
                rules=rules,
                cache=(cache_path or True) if cache else False,
                **extra,
            )
    except NoCheckpointsError as e:
        no_checkpoints(str(e))
    except GrokwatchError as e:  # --scheduler: Dask missing, a bad address, an unreachable scheduler
        error_line(str(e))
        raise typer.Exit(e.exit_code) from None
    for line in result.errors:
        error_line(line)
    for line in dict.fromkeys(result.warnings):  # a per-layer note repeats in every checkpoint: once
        warn_line(line)
    if not result.records and result.errors:
        error_line(f"{directory}: no readable checkpoint")
    elif not result.records:
        no_checkpoints(f"{directory}: no checkpoint had an analysable tensor")
    return result


def emit(result, fmt: OutputFormat, title: str, show_traps: bool = False, per_layer: bool = False) -> None:
    """Print records in the chosen format on stdout (table: one row per checkpoint, or per layer)."""
    from grokwatch.report import text as output

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
            con.print(output.layer_table(result.records, title=title, width=con.width))
        else:
            con.print(output.rich_table(result.records, title=title, show_traps=show_traps, width=con.width))


def finish(result) -> None:
    """Exit 3 when any file was bad (after everything else was printed)."""
    if result.errors:
        raise typer.Exit(ExitCode.BAD_INPUT)
