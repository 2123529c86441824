"""`grokwatch traps`: correlation traps per (checkpoint, layer), with optional figures.

Runs the same pipeline as `scan` (discovery, formats, pool, cache, bad-input
handling: `cli_common.run_scan`) with `Settings(traps=True)`, then prints one
row per (checkpoint, layer). `--plot DIR` re-reads only the layers to draw and
recomputes their shuffles with the same per-layer seed, so figures match the
numbers even when those came from the cache.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from grokwatch.cli.common import (
    check_output_dir,
    error_line,
    finish,
    run_scan,
    stderr_console,
    stdout_console,
)
from grokwatch.cli.options import (
    DEFAULT_RULES,
    DEFAULT_SETTINGS,
    BaseOpt,
    CacheOpt,
    CachePathOpt,
    DirArg,
    EmbeddingsOpt,
    ExcludeOpt,
    FormatOpt,
    LayersOpt,
    OutputFormat,
    ReplicasOpt,
    SchedulerOpt,
    SeedOpt,
    SplitQkvOpt,
    TrapMinOpt,
    WorkersOpt,
    settings_from,
)

__all__ = ["PlotFormat", "traps"]


class PlotFormat(str, Enum):
    png = "png"
    svg = "svg"


def traps(
    directory: DirArg,
    fmt: FormatOpt = OutputFormat.table,
    seed: SeedOpt = DEFAULT_SETTINGS.seed,
    replicas: ReplicasOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    layers: LayersOpt = None,
    exclude: ExcludeOpt = None,
    base: BaseOpt = None,
    embeddings: EmbeddingsOpt = DEFAULT_SETTINGS.embeddings,
    split_qkv: SplitQkvOpt = DEFAULT_SETTINGS.split_qkv,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write one figure per layer with traps into this "
            "folder (log-log ESD with its power-law fit; shuffled ESD "
            "with the MP density and the traps).",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    all_layers: Annotated[
        bool, typer.Option("--all", help="With --plot: a figure for every layer, not only those with traps.")
    ] = False,
    plot_format: Annotated[
        PlotFormat, typer.Option("--plot-format", help="Image format for --plot.")
    ] = PlotFormat.png,
    trap_min: TrapMinOpt = DEFAULT_RULES.trap_min,
) -> None:
    """Count correlation traps: eigenvalues of each element-shuffled layer above the Marchenko-Pastur bulk.

    Shuffling a layer's elements destroys its correlations; what still stands
    above the MP edge (plus a Tracy-Widom margin) comes from an atypical
    element mean or heavy-tailed element values: a trap (arXiv 2506.04434).
    Prints one row per (checkpoint, layer), or records with --format json/csv.
    Exit codes: 0 ok, 2 usage error, 3 some file unreadable or unsafe (the rest
    is still printed), 4 no checkpoints found, 5 --scheduler unusable (no Dask,
    scheduler unreachable or lost, workers on another grokwatch version).
    """
    from grokwatch.report.layer_figure import write_layer_figures
    from grokwatch.report.text import TRAP_COLUMNS, to_csv, to_json, traps_markdown, traps_table
    from grokwatch.settings import PhaseRules

    settings = settings_from(locals(), traps=True)
    if plot is not None:
        check_output_dir(plot, "--plot")
    result = run_scan(
        directory, settings, workers, cache, cache_path, PhaseRules(trap_min=trap_min), scheduler
    )
    if fmt == OutputFormat.json:
        sys.stdout.write(to_json(result.records) + "\n")
    elif fmt == OutputFormat.csv:
        sys.stdout.write(to_csv(result.records, TRAP_COLUMNS))
    elif fmt == OutputFormat.markdown:
        sys.stdout.write(traps_markdown(result.records))
    elif result.records:
        con = stdout_console()
        con.print(traps_table(result.records, f"grokwatch traps {directory} (seed={seed})", width=con.width))
    if plot is not None and result.records:
        written, problems = write_layer_figures(result, plot, all_layers, plot_format.value)
        for line in problems:
            error_line(line)
        hint = " (no layer has a trap; --all draws every layer)" if written == 0 and not all_layers else ""
        stderr_console().print(
            f"wrote {written} figure{'s' if written != 1 else ''} to {plot}{hint}", highlight=False
        )
        if problems:
            result.errors.extend(problems)
    finish(result)
