"""`grokwatch traps`: correlation traps per (checkpoint, layer), with optional figures.

Runs the same pipeline as `scan` (discovery, formats, pool, cache, bad-input
handling: `cli_common.run_scan`) with `Settings(traps=True)`, then prints one
row per (checkpoint, layer). `--plot DIR` re-reads only the layers to draw and
recomputes their shuffles with the same per-layer seed, so figures match the
numbers even when those came from the cache.
"""

from __future__ import annotations

import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from grokwatch.cli_common import (
    CacheOpt,
    CachePathOpt,
    DirArg,
    ExcludeOpt,
    FormatOpt,
    LayersOpt,
    OutputFormat,
    ReplicasOpt,
    SeedOpt,
    TrapMinOpt,
    WorkersOpt,
    error_line,
    finish,
    run_scan,
    stderr_console,
    stdout_console,
)

# csv columns: what a script needs to judge a trap count, plus alpha and the phase for context
TRAP_COLUMNS = ["checkpoint", "step", "layer", "shape", "N", "M", "alpha", "n_tail", "n_traps", "lambda_plus",
                "threshold", "rand_lambda_max", "ks_mp", "phase", "phase_reason", "error"]


class PlotFormat(str, Enum):
    png = "png"
    svg = "svg"


def _num(v, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def trap_rows(records) -> tuple[list[str], list[list[str]]]:
    """Header and one row per (checkpoint, layer) for the table and Markdown outputs."""
    header = ["step", "checkpoint", "layer", "N×M", "α", "traps", "λ⁺", "threshold", "max shuffled λ",
              "KS(MP)", "phase"]
    rows = []
    for r in records:
        if r.error and r.n_traps is None:
            rows.append(["" if r.step is None else str(r.step), r.checkpoint, r.layer, "", "", "err",
                         "", "", "", "", r.error])
            continue
        rows.append([
            "" if r.step is None else str(r.step), r.checkpoint, r.layer, f"{r.N}×{r.M}", _num(r.alpha, ".2f"),
            _num(r.n_traps, "d"), _num(r.lambda_plus), _num(r.threshold), _num(r.rand_lambda_max),
            _num(r.ks_mp), r.phase or "",
        ])
    return header, rows


def to_markdown(records) -> str:
    header, rows = trap_rows(records)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rich_table(records, title: str):
    from rich import box
    from rich.table import Table

    from grokwatch.output import PHASE_STYLE

    header, rows = trap_rows(records)
    t = Table(title=title, box=box.SIMPLE_HEAD, caption="traps = shuffled eigenvalues (mean 1) above threshold "
              "= λ⁺ + Tracy–Widom margin; median over shuffles")
    for h in header:
        t.add_column(h, justify="left" if h in ("checkpoint", "layer", "phase") else "right", no_wrap=True)
    for row in rows:
        trapped = row[5] not in ("0", "-", "")
        style = "bold red" if trapped else None
        cells = list(row)
        phase_style = PHASE_STYLE.get(cells[-1])
        if phase_style and not trapped:
            cells[-1] = f"[{phase_style}]{cells[-1]}[/]"
        t.add_row(*cells, style=style)
    return t


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def plot_name(checkpoint: str, layer: str, ext: str) -> str:
    """Deterministic file name for one (checkpoint, layer) figure."""
    return f"{_safe(checkpoint)}__{_safe(layer)}.{ext}"


def write_plots(result, out_dir: Path, all_layers: bool, ext: str) -> tuple[int, list[str]]:
    """One figure per trapped layer (or every analysed layer); returns (written, error lines)."""
    from grokwatch.analyze import layer_spectra
    from grokwatch.plots import save_layer_figure

    wanted: dict[str, dict[str, object]] = {}
    for r in result.records:
        if r.error is not None or r.n_traps is None:
            continue
        if all_layers or r.n_traps > 0:
            wanted.setdefault(r.checkpoint, {})[r.layer] = r
    written, problems = 0, []
    by_rel = {ck.rel: ck for ck in result.checkpoints}
    for rel, recs in wanted.items():
        ck = by_rel.get(rel)
        if ck is None:
            continue
        try:
            for layer, evals, tr in layer_spectra(ck, list(recs), result.settings):
                rec = recs[layer]
                step = "" if rec.step is None else f" @ step {rec.step}"
                title = f"{layer}{step} ({rel})  N×M = {tr.N}×{tr.M}"
                save_layer_figure(out_dir / plot_name(rel, layer, ext), evals, tr,
                                  alpha=rec.alpha, xmin=rec.xmin, title=title)
                written += 1
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the other figures
            problems.append(f"{rel}: cannot plot ({e})")
    return written, problems


def traps(
    directory: DirArg,
    fmt: FormatOpt = OutputFormat.table,
    seed: SeedOpt = 0,
    replicas: ReplicasOpt = None,
    workers: WorkersOpt = None,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    layers: LayersOpt = None,
    exclude: ExcludeOpt = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write one figure per layer with traps into this "
                                              "folder (log-log ESD with its power-law fit; shuffled ESD "
                                              "with the MP density and the traps).", show_default=False,
                                              file_okay=False)] = None,
    all_layers: Annotated[bool, typer.Option("--all", help="With --plot: a figure for every layer, "
                                             "not only those with traps.")] = False,
    plot_format: Annotated[PlotFormat, typer.Option("--plot-format", help="Image format for --plot.")]
    = PlotFormat.png,
    trap_min: TrapMinOpt = 2,
) -> None:
    """Count correlation traps: eigenvalues of each element-shuffled layer above the Marchenko-Pastur bulk.

    Shuffling a layer's elements destroys its correlations; what still stands
    above the MP edge (plus a Tracy-Widom margin) comes from an atypical
    element mean or heavy-tailed element values: a trap (arXiv 2506.04434).
    Prints one row per (checkpoint, layer), or records with --format json/csv.
    Exit codes: 0 ok, 2 usage error, 3 some file unreadable or unsafe (the rest
    is still printed), 4 no checkpoints found.
    """
    from grokwatch.analyze import Settings
    from grokwatch.output import to_csv, to_json
    from grokwatch.phases import PhaseRules

    settings = Settings(traps=True, seed=seed, replicas=replicas,
                        layers=tuple(layers or ()), exclude=tuple(exclude or ()))
    result = run_scan(directory, settings, workers, cache, cache_path, PhaseRules(trap_min=trap_min))
    if fmt == OutputFormat.json:
        sys.stdout.write(to_json(result.records) + "\n")
    elif fmt == OutputFormat.csv:
        sys.stdout.write(to_csv(result.records, TRAP_COLUMNS))
    elif fmt == OutputFormat.markdown:
        sys.stdout.write(to_markdown(result.records))
    elif result.records:
        stdout_console().print(rich_table(result.records, f"grokwatch traps {directory} (seed={seed})"))
    if plot is not None and result.records:
        written, problems = write_plots(result, plot, all_layers, plot_format.value)
        for line in problems:
            error_line(line)
        stderr_console().print(f"wrote {written} figure{'s' if written != 1 else ''} to {plot}")
        if problems:
            result.errors.extend(problems)
    finish(result)
