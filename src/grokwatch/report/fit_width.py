"""Tables that fit the terminal without cutting a number.

Rich shrinks a table that is wider than the console by truncating cells (`10…`,
`pre-gr…`), which destroys exactly what a user reads: step, alpha and phase.
`fitted_tables` decides instead, in this order, what gives way:

1. columns marked `drop` disappear (the checkpoint name, which repeats the step);
2. columns marked `wrap` wrap between words (evidence, layer names, errors);
3. the remaining columns are folded into several tables, each repeating the
   `key` columns (step, phase) so every row stays identifiable.

Cells are `rich.text.Text`, never markup, so a layer called `blocks[0].weight`
prints as itself. With `width=None` (piped output) the table keeps its natural
width: one line per row, for grep and awk.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

__all__ = ["Col", "fitted_tables"]


@dataclass(frozen=True)
class Col:
    header: str
    justify: str = "right"
    key: bool = False  # repeated in every fold: identifies the row (step, layer, phase)
    drop: bool = False  # removed first when too wide: repeats another column
    wrap: bool = False  # may wrap between words: free text


def _min_width(texts: list[str], wrap: bool) -> int:
    from rich.cells import cell_len

    if wrap:
        return max((cell_len(w) for t in texts for line in t.splitlines() for w in line.split()), default=0)
    return max((cell_len(line) for t in texts for line in t.splitlines()), default=0)


def _build(cols, rows, keep, title, caption, box, row_styles):
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, caption=caption, box=box)
    for i in keep:
        c = cols[i]
        t.add_column(Text(c.header), justify=c.justify, no_wrap=not c.wrap, overflow="fold")  # not markup
    for row, rstyle in zip(rows, row_styles):
        cells = []
        for i in keep:
            text, style = row[i] if isinstance(row[i], tuple) else (row[i], "")
            cells.append(Text(text, style=style or ""))
        t.add_row(*cells, style=rstyle or None)
    return t


def _overhead(cols, keep, box) -> int:
    """Width the table adds around its cells (padding, edges): measured, not assumed."""
    from rich.console import Console

    con = Console(width=100_000, file=io.StringIO())
    probe = _build(
        [Col("")] * len(keep), [["x"] * len(keep)], list(range(len(keep))), None, None, box, [None]
    )
    return con.measure(probe).maximum - len(keep)


def fitted_tables(
    cols: list[Col],
    rows: list[list],
    width: int | None,
    title: str | None = None,
    caption: str | None = None,
    row_styles: list[str | None] | None = None,
) -> list:
    """One table, or several folds of it, each at most `width` cells wide without truncating.

    `rows` hold strings or `(string, style)` pairs, one per column. The caption
    goes under the last fold; folds are titled `title (k/n)`.
    """
    from rich import box as boxes

    box = boxes.SIMPLE_HEAD
    styles = row_styles or [None] * len(rows)
    texts = [
        [c.header] + [r[i][0] if isinstance(r[i], tuple) else r[i] for r in rows] for i, c in enumerate(cols)
    ]
    need = [_min_width(texts[i], c.wrap) for i, c in enumerate(cols)]

    def fits(keep: list[int]) -> bool:
        return width is None or sum(need[i] for i in keep) + _overhead(cols, keep, box) <= width

    keep = list(range(len(cols)))
    if fits(keep):
        return [_build(cols, rows, keep, title, caption, box, styles)]
    keep = [i for i in keep if not cols[i].drop]
    if fits(keep):
        return [_build(cols, rows, keep, title, caption, box, styles)]
    keys = [i for i in keep if cols[i].key]
    chunks: list[list[int]] = []
    for i in (i for i in keep if not cols[i].key):
        if chunks and fits(sorted(keys + chunks[-1] + [i])):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    n = len(chunks)
    out = []
    for k, chunk in enumerate(chunks, 1):
        sub = f"{title} ({k}/{n})" if title and n > 1 else title
        out.append(_build(cols, rows, sorted(keys + chunk), sub, caption if k == n else None, box, styles))
    return out
