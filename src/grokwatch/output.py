"""Rendering records for people (rich tables, Markdown) and for scripts (JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from grokwatch.phases import ANTI, GROK, PRE
from grokwatch.records import COLUMNS, LayerRecord

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
                v = repr(v)
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
    t = Table(title=title, box=box.SIMPLE_HEAD, caption="? = weak fit (n_tail < 10); alpha < 2 over-correlated, "
              "2-6 well trained, > 6 random-like" + ("; /Nt = correlation traps" if show_traps else ""))
    for h in header:
        t.add_column(h, justify="right" if h.startswith(("α", "step", "train", "test")) else "left",
                     no_wrap=True)
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
