"""Rendering records for people (rich tables, Markdown) and for scripts (JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from grokwatch.phases import ANTI, GROK, PRE
from grokwatch.records import COLUMNS, LayerRecord

__all__ = [
    "PHASE_STYLE",
    "TRAP_COLUMNS",
    "alpha_cell",
    "by_checkpoint",
    "layer_names",
    "layer_table",
    "rich_table",
    "summary_rows",
    "to_csv",
    "to_json",
    "to_markdown",
    "trap_rows",
    "traps_markdown",
    "traps_table",
]

PHASE_STYLE = {PRE: "yellow", GROK: "green", ANTI: "bold red"}


def to_json(records: Iterable[LayerRecord]) -> str:
    return json.dumps([r.to_dict() for r in records], indent=1)


def to_csv(records: Iterable[LayerRecord], columns: list[str] = COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in records:
        d = r.to_dict()
        row = []
        for c in columns:
            v = d.get(c)
            if isinstance(v, list):
                v = "x".join(map(str, v))
            elif isinstance(v, float):
                v = repr(float(v))  # numpy scalars would print as np.float64(...)
            row.append("" if v is None else v)
        w.writerow(row)
    return buf.getvalue()


def layer_names(records: Iterable[LayerRecord]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.setdefault(r.layer, None)
    return list(seen)


def by_checkpoint(records: Iterable[LayerRecord]) -> list[tuple[str, list[LayerRecord]]]:
    groups: dict[str, list[LayerRecord]] = {}
    for r in records:
        groups.setdefault(r.checkpoint, []).append(r)
    return list(groups.items())


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def alpha_cell(r: LayerRecord | None, show_traps: bool = False) -> str:
    """`3.41`, `3.41?` for a weak fit (n_tail < 10), `err` for a failed layer, plus `/Nt` traps."""
    if r is None:
        return ""
    if r.error and r.alpha is None:
        return "err"
    s = _fmt(r.alpha) + ("?" if r.weak_fit else "")
    if show_traps and r.n_traps is not None:
        s += f" /{r.n_traps}t"
    return s


def summary_rows(records: list[LayerRecord], show_traps: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-checkpoint table: step, checkpoint, alpha per layer, accuracy, phase."""
    layers = layer_names(records)
    groups = by_checkpoint(records)
    has_acc = any(r.test_acc is not None for r in records)
    header = ["step", "checkpoint", *[f"α {n}" for n in layers]]
    if has_acc:
        header += ["train acc", "test acc"]
    header += ["phase"]
    rows = []
    for ck, group in groups:
        by_layer = {r.layer: r for r in group}
        first = group[0]
        row = ["" if first.step is None else str(first.step), ck]
        row += [alpha_cell(by_layer.get(n), show_traps) for n in layers]
        if has_acc:
            row += [_fmt(first.train_acc, 3), _fmt(first.test_acc, 3)]
        row.append(first.phase or "")
        rows.append(row)
    return header, rows


def to_markdown(records: list[LayerRecord], show_traps: bool = False) -> str:
    header, rows = summary_rows(records, show_traps)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _alpha_style(a: float | None) -> str:
    return "red" if a is not None and a < 2 else ("yellow" if a is not None and a > 6 else "")


def _short_layer_headers(layers: list[str]) -> list[str]:
    """`fc1` for `fc1.weight` when every layer ends in `.weight`: narrower columns, nothing lost."""
    if layers and all(n.endswith(".weight") and len(n) > 7 for n in layers):
        return [n[: -len(".weight")] for n in layers]
    return layers


def rich_table(
    records: list[LayerRecord], title: str | None = None, show_traps: bool = False, width: int | None = None
):
    """The per-checkpoint table for a terminal `width` cells wide (None: natural width).

    Step, every alpha and the phase are never truncated: the checkpoint column is
    dropped first, then the alpha columns fold into several tables (see fit_width).
    """
    from rich.console import Group

    from grokwatch.report.fit_width import Col, fitted_tables

    header, rows = summary_rows(records, show_traps)
    layers = layer_names(records)
    short = dict(zip(layers, _short_layer_headers(layers)))
    all_steps = all(row[0] for row in rows)
    cols = []
    for h in header:
        if h == "step":
            cols.append(Col("step", key=True))
        elif h == "checkpoint":
            cols.append(Col("checkpoint", "left", key=not all_steps, drop=all_steps))
        elif h.startswith("α "):
            cols.append(Col("α " + short[h[2:]]))
        elif h == "phase":
            cols.append(Col("phase", "left", key=True))
        else:
            cols.append(Col(h))
    styled_rows = []
    for row in rows:
        cells: list = []
        for h, c in zip(header, row):
            style = ""
            if h.startswith("α") and c not in ("", "-", "err"):
                try:
                    style = _alpha_style(float(c.split()[0].rstrip("?")))
                except ValueError:
                    style = ""
                if show_traps and "/" in c and not c.endswith("/0t"):
                    style = "bold red"
            elif h == "phase":
                style = PHASE_STYLE.get(c, "")
            cells.append((c, style))
        styled_rows.append(cells)
    caption = "? = weak fit (n_tail < 10); alpha < 2 over-correlated, 2-6 well trained, > 6 random-like" + (
        "; /Nt = correlation traps" if show_traps else ""
    )
    return Group(*fitted_tables(cols, styled_rows, width, title, caption))


def _shape(r: LayerRecord) -> str:
    """`N×M` (larger side first) in every table, as the traps and the HTML report show it."""
    return f"{r.N}×{r.M}" if r.N else "×".join(map(str, r.shape))


def layer_table(records: list[LayerRecord], title: str | None = None, width: int | None = None):
    """One row per (checkpoint, layer) with the fit's evidence: the long view of `scan --per-layer`.

    Wider than a terminal: step, layer and phase repeat in every fold.
    """
    from rich.console import Group

    from grokwatch.report.fit_width import Col, fitted_tables

    show_traps = any(r.n_traps is not None for r in records)
    cols = [
        Col("step", key=True),
        Col("layer", "left", key=True, wrap=True),
        Col("N×M"),
        Col("α"),
        Col("σ"),
        Col("xmin"),
        Col("D"),
        Col("n_tail"),
        Col("λ_max"),
        Col("stable rank"),
        Col("entropy"),
    ]
    if show_traps:
        cols += [Col("traps"), Col("λ+ (TW)")]
    cols += [Col("phase", "left", key=True, wrap=True)]
    rows = []
    for r in records:
        a = "err" if r.alpha is None else f"{r.alpha:.3f}"
        row: list = [
            "" if r.step is None else str(r.step),
            r.layer,
            _shape(r),
            (a, _alpha_style(r.alpha)),
            _fmt(r.sigma, 3),
            _g(r.xmin),
            _fmt(r.D, 3),
            ("-" if r.n_tail is None else str(r.n_tail)) + ("?" if r.weak_fit else ""),
            _g(r.lambda_max),
            _fmt(r.stable_rank, 1),
            _fmt(r.entropy, 3),
        ]
        if show_traps:
            n = "-" if r.n_traps is None else str(r.n_traps)
            row += [(n, "bold red" if r.n_traps else ""), _fmt(r.threshold, 3)]
        if r.error and r.alpha is None:
            row.append((r.error, "red"))
        else:
            row.append((r.phase or "", PHASE_STYLE.get(r.phase or "", "")))
        rows.append(row)
    caption = "? = weak fit (n_tail < 10)"
    return Group(*fitted_tables(cols, rows, width, title, caption))


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


# ---------------------------------------------------------------- traps (one row per layer)

# csv columns: what a script needs to judge a trap count, plus alpha and the phase for context
TRAP_COLUMNS = [
    "checkpoint",
    "step",
    "layer",
    "shape",
    "N",
    "M",
    "alpha",
    "n_tail",
    "weak_fit",
    "n_traps",
    "lambda_plus",
    "threshold",
    "rand_lambda_max",
    "ks_mp",
    "phase",
    "phase_reason",
    "error",
]


def _trap_num(v, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def trap_rows(records) -> tuple[list[str], list[list[str]]]:
    """Header and one row per (checkpoint, layer) for the table and Markdown outputs."""
    header = [
        "step",
        "checkpoint",
        "layer",
        "N×M",
        "α",
        "traps",
        "λ⁺",
        "threshold",
        "max shuffled λ",
        "KS(MP)",
        "phase",
    ]
    rows = []
    for r in records:
        step = "" if r.step is None else str(r.step)
        if r.error and r.n_traps is None:
            rows.append([step, r.checkpoint, r.layer, "", "", "err", "", "", "", "", r.error])
            continue
        rows.append(
            [
                step,
                r.checkpoint,
                r.layer,
                _shape(r),
                _trap_num(r.alpha, ".2f") + ("?" if r.weak_fit else ""),
                _trap_num(r.n_traps, "d"),
                _trap_num(r.lambda_plus),
                _trap_num(r.threshold),
                _trap_num(r.rand_lambda_max),
                _trap_num(r.ks_mp),
                r.phase or "",
            ]
        )
    return header, rows


def traps_markdown(records) -> str:
    header, rows = trap_rows(records)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def traps_table(records, title: str, width: int | None = None):
    """One row per (checkpoint, layer); folds like `rich_table` when the terminal is narrow."""
    from rich.console import Group

    from grokwatch.report.fit_width import Col, fitted_tables

    header, rows = trap_rows(records)
    all_steps = all(row[0] for row in rows)
    cols = []
    for h in header:
        if h == "step":
            cols.append(Col(h, key=True))
        elif h == "checkpoint":
            cols.append(Col(h, "left", key=not all_steps, drop=all_steps))
        elif h == "layer":
            cols.append(Col(h, "left", key=True, wrap=True))
        elif h == "phase":
            cols.append(Col(h, "left", key=True, wrap=True))
        else:
            cols.append(Col(h))
    styled, row_styles = [], []
    for row in rows:
        trapped = row[5] not in ("0", "-", "")
        cells: list = list(row)
        if not trapped:
            cells[-1] = (row[-1], PHASE_STYLE.get(row[-1], ""))
        styled.append(cells)
        row_styles.append("bold red" if trapped else None)
    caption = (
        "traps = shuffled eigenvalues (mean 1) above threshold = λ⁺ + Tracy–Widom margin; "
        "median over shuffles; ? = weak fit (n_tail < 10)"
    )
    return Group(*fitted_tables(cols, styled, width, title, caption, row_styles))
