"""The HTML report's "How sure α is" section: fit jumps, σ / bootstrap spread, D, the layer mean.

Kept apart from `report.html` (page and layout) so the fit-quality tables can
change without touching the rest of the page.
"""

from __future__ import annotations

from html import escape

from grokwatch.report.uncertainty import JUMP_TAIL, JUMP_XMIN, layer_mean_alpha

__all__ = ["fits_html", "jump_note"]


def jump_note() -> str:
    return (
        f"A fit is flagged ⚑ when, against the same layer at the previous checkpoint, its tail size n_tail "
        f"changed by more than ×{JUMP_TAIL:g} or its x_min (relative to λ_max) by more than ×{JUMP_XMIN:g}: the fit then "
        "measures a different part of the spectrum, and a step in α there may be the fit, not the weights. "
        "σ = (α − 1)/√n_tail is the MLE's error for a fixed x_min; the bootstrap (--bootstrap N) refits "
        "resampled eigenvalues with x_min free, so its spread includes that choice. D is the fit's "
        "Kolmogorov–Smirnov distance (smaller: the tail looks more like a power law)."
    )


def _f(v, fmt: str = ".2f") -> str:
    return "" if v is None else format(v, fmt)


def _table(header: list[str], rows: list[str], numeric: set[int]) -> str:
    ths = "".join(f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(header))
    return f"<table><thead><tr>{ths}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def fits_html(rep, jumps: dict, boot: dict | None = None) -> str:
    """Flagged fits first, then α ± spread, D and n_tail per checkpoint and layer with the layer mean."""
    boot = boot or {}
    out = [f'<p class="note">{escape(jump_note())}</p>']
    if jumps:
        rows = []
        for c in rep.checkpoints:
            for r in c.records:
                why = jumps.get((c.rel, r.layer))
                if not why:
                    continue
                b = boot.get((c.rel, r.layer))
                rows.append(
                    "<tr>"
                    f'<td class="n">{"" if c.step is None else f"{c.step:,}"}</td><td>{escape(r.layer)}</td>'
                    f'<td class="n">{_f(r.alpha)}</td><td class="n">{_f(r.sigma)}</td>'
                    + (f'<td class="n">{_f(b.std if b else None)}</td>' if boot else "")
                    + f'<td class="n">{_f(r.D, ".3f")}</td><td class="n">{r.n_tail}</td>'
                    f'<td class="n">{_f(r.xmin, ".3g")}</td><td>{escape(why)}</td></tr>'
                )
        header = [
            "step",
            "layer",
            "α",
            "σ",
            *(["bootstrap sd"] if boot else []),
            "D",
            "n_tail",
            "x_min",
            "jump",
        ]
        out.append(f"<h3>Fits that jump ({len(jumps)})</h3>")
        out.append(_table(header, rows, {0, 2, 3, 4, 5, 6} | ({7} if boot else set())))
    else:
        out.append(
            f'<p class="note">No fit jumps: every n_tail within ×{JUMP_TAIL:g} and every x_min within '
            f"×{JUMP_XMIN:g} (x_min relative to λ_max) of the same layer's previous fit.</p>"
        )
    spread = "[bootstrap 16–84 %] and sd" if boot else "± σ"
    out.append(f"<h3>α {spread}, D and n_tail per checkpoint</h3>")
    header = ["step", "mean α", *rep.layers]
    rows = []
    for c in rep.checkpoints:
        by = {r.layer: r for r in c.records}
        mean = layer_mean_alpha(c.records)
        cells = [
            f'<td class="n">{"" if c.step is None else f"{c.step:,}"}</td>',
            f'<td class="n">{_f(mean)}</td>',
        ]
        for name in rep.layers:
            r = by.get(name)
            if r is None or r.alpha is None:
                cells.append("<td></td>")
                continue
            b = boot.get((c.rel, name))
            flag = " ⚑" if (c.rel, name) in jumps else ""
            cls = ' class="n lo"' if flag else ' class="n"'
            if b is not None and b.lo is not None:
                spread = f" [{b.lo:.2f}–{b.hi:.2f}] sd {_f(b.std)}"
            else:
                spread = f" ± {_f(r.sigma)}"
            cells.append(
                f"<td{cls}>{r.alpha:.2f}{spread}{flag}<br>"
                f'<span class="note">D {_f(r.D, ".3f")} · n {r.n_tail}</span></td>'
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    out.append(f'<div class="scroll">{_table(header, rows, set(range(len(header))))}</div>')
    return "\n".join(out)
