"""α per layer against log step as a unicode text chart, for `grokwatch report` on a remote terminal.

    for line in chart_lines(rep, width=80):
        print(line)

    α per layer against step (log)
     10.5 ┤  ●
          │ ● ●●
      6.0 ┤·····●●·····■■■■■■·····························
          │■■■■■   ●●●●      ■■■■■■■■
      2.0 ┤·······················●●●●●●●●●●●●●●●●●●●●●●
      0.0 ┼───────────────────────────────────────────────
           10        100       1k        10k       100k
    phase  pppppppppggggggggggggggggggggggggggAAAAAAAAAAAA
           ● fc1.weight  ■ fc2.weight  × mean α   ···· α = 2, 6

Each layer's α is interpolated linearly in log step between its checkpoints,
one marker per column; later layers draw over earlier ones; values above the
axis sit on its top row. The phase row gives the spectral phase of the
checkpoint nearest each column (p pre-grokking, g grokking, A anti-grokking,
? unknown). No dependency beyond the standard library; `render_chart` adds
colour through rich when the console has it. Every line fits `width` columns.
"""

from __future__ import annotations

import math

from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN

__all__ = ["MARKERS", "PHASE_CHAR", "chart_lines", "jump_lines", "render_chart"]

MARKERS = "●■▲◆○□△◇+%"
MEAN_MARKER = "×"
PHASE_CHAR = {PRE: "p", GROK: "g", ANTI: "A", UNKNOWN: "?"}
_STYLE = {"p": "yellow", "g": "green", "A": "bold red", "?": "dim"}
_COLORS = ["blue", "dark_orange", "cyan", "magenta", "bright_black", "bright_magenta", "yellow", "green"]
_LABEL = 6  # width of the y labels


def _pos(steps: list[int]) -> list[float]:
    """log10 positions; step 0 (or below) half a decade left of the smallest positive step."""
    pos = [s for s in steps if s > 0]
    floor = math.log10(min(pos)) - 0.5 if pos else 0.0
    return [math.log10(s) if s > 0 else floor for s in steps]


def _tick(v: int) -> str:
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if v >= div:
            return f"{v // div}{suffix}"
    return str(v)


def _series(rep, layer: str | None) -> list[tuple[int, float]]:
    from grokwatch.report.uncertainty import layer_mean_alpha

    out = []
    for c in rep.checkpoints:
        if c.step is None:
            continue
        if layer is None:
            m = layer_mean_alpha(c.records)
            if m is not None:
                out.append((c.step, m))
            continue
        for r in c.records:
            if r.layer == layer and r.alpha is not None and math.isfinite(r.alpha):
                out.append((c.step, r.alpha))
    return out


def chart_lines(rep, width: int = 80, height: int = 12, max_layers: int = len(MARKERS)) -> list[str]:
    """The chart as plain lines, none wider than `width` (at least 40). Empty when nothing has a step and α."""
    width = max(40, width)
    views = [c for c in rep.checkpoints if c.step is not None]
    layers = rep.layers[:max_layers]
    series = [(MARKERS[k], _series(rep, name)) for k, name in enumerate(layers)]
    if len(rep.layers) > 1:
        series.append((MEAN_MARKER, _series(rep, None)))
    series = [(m, s) for m, s in series if s]
    if not views or not series:
        return []
    cols = width - _LABEL - 2  # label, axis char, one spare column
    xs = _pos([c.step for c in views])
    x0, x1 = min(xs), max(xs)
    span = (x1 - x0) or 1.0

    def col(x: float) -> int:
        return min(cols - 1, max(0, round((x - x0) / span * (cols - 1))))

    rules = rep.rules
    peak = max(a for _, s in series for _, a in s)
    top = max(rules.alpha_high + 1.0, min(peak * 1.05, 15.0))
    rows = height

    def row(a: float) -> int:
        return min(rows - 1, max(0, round((top - min(a, top)) / top * (rows - 1))))

    grid = [[" "] * cols for _ in range(rows)]
    for ref in (rules.alpha_low, rules.alpha_high):
        if 0 < ref < top:
            grid[row(ref)] = ["·"] * cols
    for marker, pts in series:
        px = _pos([s for s, _ in pts])
        ys = [a for _, a in pts]
        if len(pts) == 1:
            grid[row(ys[0])][col(px[0])] = marker
            continue
        for c in range(col(px[0]), col(px[-1]) + 1):
            x = x0 + c / max(cols - 1, 1) * span
            j = next((i for i in range(len(px) - 1) if px[i] <= x <= px[i + 1]), None)
            if j is None:
                continue
            t = 0.0 if px[j + 1] == px[j] else (x - px[j]) / (px[j + 1] - px[j])
            grid[row(ys[j] + t * (ys[j + 1] - ys[j]))][c] = marker
    labels = {0: f"{top:.1f}", rows - 1: "0.0"}
    for ref in (rules.alpha_low, rules.alpha_high):
        if 0 < ref < top:
            labels[row(ref)] = f"{ref:.1f}"
    out = ["α per layer against step (log)"]
    for r in range(rows):
        lab = labels.get(r)
        axis = "┼" if r == rows - 1 else ("┤" if lab else "│")
        out.append(f"{(lab or ''):>{_LABEL - 1}} {axis}" + "".join(grid[r]).rstrip())
    out.append(" " * _LABEL + "└" + "─" * cols)
    # x ticks at powers of ten, skipped where they would overlap
    ticks = [" "] * (cols + 8)
    pos = [s for s in (c.step for c in views) if s > 0]
    if pos:
        k = math.ceil(math.log10(min(pos)) - 1e-9)
        last_end = -1
        while 10**k <= max(pos) * 1.0000001:
            text = _tick(10**k)
            c = col(float(k)) - len(text) // 2
            c = max(0, min(c, cols - len(text)))
            if c > last_end:
                ticks[c : c + len(text)] = list(text)
                last_end = c + len(text)
            k += 1
    if 0 in [c.step for c in views]:
        ticks[0] = "0" if ticks[0] == " " else ticks[0]
    out.append(" " * (_LABEL + 1) + "".join(ticks).rstrip())
    phase = [" "] * cols
    for c in range(cols):
        x = x0 + c / max(cols - 1, 1) * span
        i = min(range(len(xs)), key=lambda i: (abs(xs[i] - x), i))
        phase[c] = PHASE_CHAR.get(views[i].phase, "?")
    out.append(f"{'phase':<{_LABEL}} " + "".join(phase))
    legend = [f"{MARKERS[k]} {name}" for k, name in enumerate(layers)]
    if any(m == MEAN_MARKER for m, _ in series):
        legend.append(f"{MEAN_MARKER} mean α")
    if len(rep.layers) > len(layers):
        legend.append(f"(+{len(rep.layers) - len(layers)} layers not drawn)")
    legend.append(f"···· α = {rules.alpha_low:g}, {rules.alpha_high:g}")
    legend.append("phase: p pre, g grokking, A anti, ? unknown")
    line = " " * (_LABEL + 1)
    for item in legend:
        if len(line) + len(item) + 2 > width and line.strip():
            out.append(line.rstrip())
            line = " " * (_LABEL + 1)
        line += item + "  "
    out.append(line.rstrip())
    return [ln[:width] for ln in out]


def jump_lines(rep, jumps: dict, limit: int = 8) -> list[str]:
    """'⚑ step 1,000 fc1.weight: n_tail 40 → 18 (α 5.82 → 12.59)' per flagged fit, at most `limit`."""
    out = []
    for c in rep.checkpoints:
        for r in c.records:
            why = jumps.get((c.rel, r.layer))
            if why:
                out.append(f"⚑ {c.label} {r.layer}: {why}")
    if len(out) > limit:
        out = out[:limit] + [f"… {len(out) - limit} more (see --html, section “How sure α is”)"]
    return out


def render_chart(rep, console, width: int | None = None, jumps: dict | None = None) -> None:
    """Print the chart (coloured when the console has colour) and the flagged fit jumps."""
    from rich.text import Text

    width = min(80, width or console.width or 80)
    lines = chart_lines(rep, width)
    if not lines:
        return
    colours = {MARKERS[k]: _COLORS[k % len(_COLORS)] for k in range(len(MARKERS))}
    for i, ln in enumerate(lines):
        t = Text(ln, no_wrap=True, overflow="ignore")
        if ln.startswith("phase "):
            for j, ch in enumerate(ln):
                if j > _LABEL and ch in _STYLE:
                    t.stylize(_STYLE[ch], j, j + 1)
        elif i > 0:
            for j, ch in enumerate(ln):
                if ch in colours:
                    t.stylize(colours[ch], j, j + 1)
                elif ch == "·":
                    t.stylize("dim", j, j + 1)
        console.print(t)
    if jumps:
        console.print(
            Text(
                f"fit jumps ({len(jumps)}): n_tail changed > ×2 or x_min/λ_max > ×3 since the previous checkpoint"
            )
        )
        for ln in jump_lines(rep, jumps):
            console.print(Text(ln, no_wrap=False))
