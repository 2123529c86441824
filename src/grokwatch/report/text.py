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


def rich_table(records: list[LayerRecord], title: str | None = None, show_traps: bool = False):
    from rich import box
    from rich.table import Table

    header, rows = summary_rows(records, show_traps)
    t = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        caption="? = weak fit (n_tail < 10); alpha < 2 over-correlated, "
        "2-6 well trained, > 6 random-like" + ("; /Nt = correlation traps" if show_traps else ""),
    )
    for h in header:
        t.add_column(
            h, justify="right" if h.startswith(("α", "step", "train", "test")) else "left", no_wrap=True
        )
    for row in rows:
        styled = []
        for h, c in zip(header, row):
            if h.startswith("α") and c not in ("", "-", "err"):
                try:
                    a = float(c.split()[0].rstrip("?"))
                except ValueError:
                    a = None
                style = "red" if a is not None and a < 2 else ("yellow" if a is not None and a > 6 else "")
                if show_traps and "/" in c and not c.endswith("/0t"):
                    style = "bold red"
                styled.append(f"[{style}]{c}[/]" if style else c)
            elif h == "phase":
                st = PHASE_STYLE.get(c)
                styled.append(f"[{st}]{c}[/]" if st else c)
            else:
                styled.append(c)
        t.add_row(*styled)
    return t


def layer_table(records: list[LayerRecord], title: str | None = None):
    """One row per (checkpoint, layer) with the fit's evidence: the long view of `scan --per-layer`."""
    from rich import box
    from rich.table import Table

    show_traps = any(r.n_traps is not None for r in records)
    t = Table(title=title, box=box.SIMPLE_HEAD)
    cols = ["step", "layer", "shape", "α", "σ", "xmin", "D", "n_tail", "λ_max", "stable rank", "entropy"]
    if show_traps:
        cols += ["traps", "λ+ (TW)"]
    cols += ["phase"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("layer", "shape", "phase") else "right", no_wrap=True)
    for r in records:
        a = "err" if r.alpha is None else f"{r.alpha:.3f}"
        a_style = (
            "red" if r.alpha is not None and r.alpha < 2 else ("yellow" if r.alpha and r.alpha > 6 else "")
        )
        row = [
            "" if r.step is None else str(r.step),
            r.layer,
            "x".join(map(str, r.shape)),
            f"[{a_style}]{a}[/]" if a_style else a,
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
            row += [f"[bold red]{n}[/]" if r.n_traps else n, _fmt(r.threshold, 3)]
        row.append(r.phase or "")
        if r.error and r.alpha is None:
            row[-1] = f"[red]{r.error}[/]"
        t.add_row(*row)
    return t


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
        if r.error and r.n_traps is None:
            rows.append(
                [
                    "" if r.step is None else str(r.step),
                    r.checkpoint,
                    r.layer,
                    "",
                    "",
                    "err",
                    "",
                    "",
                    "",
                    "",
                    r.error,
                ]
            )
            continue
        rows.append(
            [
                "" if r.step is None else str(r.step),
                r.checkpoint,
                r.layer,
                f"{r.N}×{r.M}",
                _trap_num(r.alpha, ".2f"),
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


def traps_table(records, title: str):
    from rich import box
    from rich.table import Table

    header, rows = trap_rows(records)
    t = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        caption="traps = shuffled eigenvalues (mean 1) above threshold "
        "= λ⁺ + Tracy–Widom margin; median over shuffles",
    )
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
