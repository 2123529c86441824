"""Several runs in one command: scan each folder, keep going past a folder without checkpoints.

`grokwatch report A B` and `grokwatch scan A B` share this. One folder goes
through `common.run_scan` exactly as before (it exits 4 itself); with several,
a folder without checkpoints prints its one error line, the others are still
analysed and reported, and the command exits 4 at the end.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import typer

from grokwatch.cli.common import error_line, run_scan
from grokwatch.errors import ExitCode

__all__ = ["emit_runs", "named_runs", "scan_runs"]


def named_runs(args: list[Path]) -> list[tuple[str, Path]]:
    """(name, path) per argument (`NAME=PATH` or a folder); a name used twice is a usage error (exit 2)."""
    from grokwatch.report.multi_run import parse_runs

    try:
        return parse_runs([str(a) for a in args])
    except ValueError as e:
        error_line(str(e))
        raise typer.Exit(ExitCode.USAGE) from None


def scan_runs(
    specs: list[tuple[str, Path]], settings, workers, cache, cache_path, rules, scheduler=None, device=None
):
    """[(name, ScanResult)] for the folders that hold checkpoints, and whether one did not.

    A `--scheduler` serves every run: `--scheduler local` starts one LocalCluster (on the first
    run with work for it), not one per run, and closes it before returning.
    """
    with _shared(scheduler, workers) as shared:
        return _scan_each(specs, settings, workers, cache, cache_path, rules, shared, device)


def _shared(scheduler, workers):
    """`dask_engine.shared_scheduler`, imported only when a scheduler is asked for (a local scan
    never imports the Dask engine)."""
    if scheduler is None:
        return nullcontext(None)
    from grokwatch.dask_engine import shared_scheduler

    return shared_scheduler(scheduler, workers)


def _scan_each(specs, settings, workers, cache, cache_path, rules, scheduler, device):
    def scan(path):
        return run_scan(path, settings, workers, cache, cache_path, rules, scheduler=scheduler, device=device)

    if len(specs) == 1:
        name, path = specs[0]
        return [(name, scan(path))], False
    out, missing = [], False
    for name, path in specs:
        try:
            out.append((name, scan(path)))
        except typer.Exit as e:
            if e.exit_code != ExitCode.NO_CHECKPOINTS:
                raise
            missing = True
    if not out:
        raise typer.Exit(ExitCode.NO_CHECKPOINTS)
    return out, missing


def emit_runs(results, fmt, title: str, show_traps: bool, per_layer: bool) -> None:
    """`scan` output for several runs: json/csv records gain a leading `run` field; tables one per run."""
    import csv
    import io
    import json

    from grokwatch.cli.common import emit
    from grokwatch.cli.options import OutputFormat
    from grokwatch.records import COLUMNS
    from grokwatch.report import text as output

    if fmt == OutputFormat.json:
        rows = [{"run": name, **r.to_dict()} for name, res in results for r in res.records]
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
    elif fmt == OutputFormat.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["run", *COLUMNS])
        for name, res in results:
            body = output.to_csv(res.records).splitlines()[1:]
            for line in body:
                buf.write(f"{_csv_cell(name)},{line}\n")
        sys.stdout.write(buf.getvalue())
    else:
        for name, res in results:
            if fmt == OutputFormat.markdown:
                sys.stdout.write(f"\n### {name}\n\n")
            emit(res, fmt, title=f"{title}: {name}", show_traps=show_traps, per_layer=per_layer)


def _csv_cell(text: str) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()
