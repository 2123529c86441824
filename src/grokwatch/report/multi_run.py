"""Several runs side by side: `grokwatch report RUN_A RUN_B ...` and `grokwatch scan A B`.

    runs = [Run(name, rep, result) for ...]      # one report model per folder
    comparison_rows(runs)                        # the summary table, one row per run
    build_multi_html(runs)                       # one self-contained page

Runs are named by folder, or `NAME=PATH` on the command line (`parse_runs`).
The page puts α per layer of every run on one log-step axis (one panel per
layer, one colour per run, the layer mean as the last panel), the accuracies
on the same axis, a phase band row per run (spectral phase above, accuracy
phase below), the comparison table, and per run its summary, fit jumps,
checkpoint table and ESD plots. Same rules as the one-run page: no
JavaScript, no external URL, no absolute path, byte-stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np

from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN

__all__ = [
    "MAX_PANELS",
    "MULTI_SECTIONS",
    "Run",
    "build_multi_html",
    "comparison_markdown",
    "comparison_rows",
    "parse_runs",
    "render_comparison",
    "runs_alpha_svg",
    "runs_accuracy_svg",
    "runs_phase_svg",
]

MAX_PANELS = 6  # layer panels in the multi-run α figure (plus the layer mean)
MULTI_SECTIONS = [
    ("summary", "Runs compared"),
    ("alpha", "α per layer"),
    ("accuracy", "Accuracy"),
    ("phases", "Phases"),
    ("runs", "Each run"),
    ("settings", "Settings and versions"),
]
COMPARISON_HEADER = [
    "run",
    "checkpoints",
    "steps",
    "grokking onset",
    "best (spectra)",
    "peak test acc",
    "first drop",
    "first warning",
    "first anti-grokking",
    "agreement",
    "balanced",
    "false alarms",
    "mean α (last)",
    "fit jumps",
    "level",
]


@dataclass
class Run:
    """One run of a comparison: its name, report model, scan result and optional bootstrap."""

    name: str
    rep: object  # report.model.Report
    result: object  # scan.ScanResult
    boot: dict | None = None
    jumps: dict = field(default_factory=dict)


def _is_named(arg: str) -> bool:
    name, sep, path = arg.partition("=")
    return bool(sep and name and path and "/" not in name and not Path(arg).exists())


def parse_runs(args: list[str]) -> list[tuple[str, Path]]:
    """['a=runs/x', 'runs/y'] -> [('a', runs/x), ('y', runs/y)]; folder names made unique.

    A folder named like another gets its parent in front ('s0/mnist'); an
    explicit NAME used twice is a ValueError (the CLI's usage error).
    """
    items: list[tuple[str | None, Path]] = []
    for a in args:
        a = str(a)
        if _is_named(a):
            name, _, path = a.partition("=")
            items.append((name, Path(path)))
        else:
            items.append((None, Path(a)))
    explicit = [n for n, _ in items if n is not None]
    dup = {n for n in explicit if explicit.count(n) > 1}
    if dup:
        raise ValueError(f"run name used twice: {', '.join(sorted(dup))}")
    auto = [(p.resolve().name or str(p)) for _, p in items]
    out: list[tuple[str, Path]] = []
    taken = set(explicit)
    for (n, p), a in zip(items, auto):
        if n is None:
            n = a
            if auto.count(a) > 1 or n in taken:
                n = f"{p.resolve().parent.name}/{a}"
            k = 2
            base = n
            while n in taken:
                n, k = f"{base}#{k}", k + 1
        taken.add(n)
        out.append((n, p))
    return out


# ---------------------------------------------------------------- the comparison table


def _at(view) -> str:
    return "–" if view is None else view.label.replace("step ", "")


def comparison_rows(runs: list[Run]) -> list[list[str]]:
    """One row per run, the columns of COMPARISON_HEADER, as text (HTML, terminal and JSON share it)."""
    from grokwatch.report.model import step_range
    from grokwatch.report.uncertainty import layer_mean_alpha

    rows = []
    for run in runs:
        rep = run.rep
        steps = rep.steps
        ag = rep.agreement
        lead = rep.lead(rep.warning)
        warn = _at(rep.warning)
        if lead is not None:
            warn += (
                " (at the drop)"
                if lead == 0
                else f" ({abs(lead):,} {'before' if lead > 0 else 'after'} the drop)"
            )
        last = rep.checkpoints[-1] if rep.checkpoints else None
        mean = layer_mean_alpha(last.records) if last is not None else None
        rows.append(
            [
                run.name,
                str(len(rep.checkpoints)),
                step_range(min(steps), max(steps)) if steps else "?",
                _at(rep.onset),
                _at(rep.best),
                "–" if rep.peak is None else f"{rep.peak.test_acc:.3f} @ {_at(rep.peak)}",
                "–" if rep.drop is None else f"{_at(rep.drop)} ({rep.drop.test_acc:.3f})",
                warn,
                _at(rep.first_anti),
                "–"
                if ag is None or not ag.compared
                else f"{ag.agree}/{ag.compared} ({100 * ag.fraction:.0f}%)",
                "–" if ag is None or not ag.compared else f"{100 * ag.balanced:.0f}%",
                "–" if ag is None else str(ag.false_alarms),
                "–" if mean is None else f"{mean:.2f}",
                str(len(run.jumps)),
                rep.level,
            ]
        )
    return rows


# the columns the terminal shows (80 columns: the rest is in --html / --json)
_TERMINAL = ("run", "grokking onset", "peak test acc", "first drop", "first warning", "balanced", "level")


def render_comparison(runs: list[Run], console) -> None:
    """The runs-compared table on the terminal (rich; plain when piped)."""
    from rich import box
    from rich.markup import escape as rich_escape
    from rich.table import Table

    idx = [COMPARISON_HEADER.index(h) for h in _TERMINAL]
    t = Table(title="runs compared", box=box.SIMPLE_HEAD, title_justify="left")
    for h in _TERMINAL:
        t.add_column(h, no_wrap=h == "run")
    for row in comparison_rows(runs):
        t.add_row(*(rich_escape(row[i]) for i in idx))
    console.print(t)


def comparison_markdown(runs: list[Run]) -> str:
    """The runs-compared table as Markdown (first in `--markdown` / the step summary with several runs)."""

    def cell(v: str) -> str:
        return v.replace("|", "\\|")

    lines = ["### grokwatch: runs compared", "", "| " + " | ".join(COMPARISON_HEADER) + " |"]
    lines.append("|" + "---|" * len(COMPARISON_HEADER))
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in comparison_rows(runs)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- figures


def _figure(n_axes: int, height_each: float, extra: float = 0.95):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = n_axes * height_each + extra
    fig = Figure(figsize=(10, height), dpi=100)
    FigureCanvasAgg(fig)
    # the margins of report.run_figures, so every step axis on the page lines up
    fig.subplots_adjust(
        left=0.75 / 10, right=1 - 2.3 / 10, bottom=0.6 / height, top=1 - 0.35 / height, hspace=0.35
    )
    axes = fig.subplots(n_axes, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _render(salt: str, fig_fn, fmt: str = "svg"):
    import io

    import matplotlib

    from grokwatch.report.run_figures import _RC, _svg, uniquify_ids

    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"grokwatch-{salt}"}):
        fig = fig_fn()
        if fmt == "png":
            buf = io.BytesIO()
            fig.savefig(buf, format="png", metadata={"Software": None})
            return buf.getvalue()
        return uniquify_ids(_svg(fig), f"{salt}-")


def _all_steps(runs: list[Run]) -> list[int]:
    return sorted({c.step for r in runs for c in r.rep.checkpoints if c.step is not None})


def _layers(runs: list[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for r in runs:
        for name in r.rep.layers:
            seen.setdefault(name, None)
    return list(seen)


def _gid(*parts: str) -> str:
    import re

    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", p) for p in parts)


def runs_alpha_svg(runs: list[Run], fmt: str = "svg"):
    """α against step, one panel per layer (first MAX_PANELS) and one for the layer mean; one colour per run."""
    from grokwatch.report.run_figures import COLORS, _xaxis
    from grokwatch.report.uncertainty import band, layer_mean_alpha

    layers = _layers(runs)[:MAX_PANELS]
    steps = _all_steps(runs)
    rules = runs[0].rep.rules

    def draw():
        fig, axes = _figure(len(layers) + 1, 1.9)
        _xaxis(axes[0], steps)
        for ax, layer in zip(axes, [*layers, None]):
            top = rules.alpha_high + 1.5
            for k, run in enumerate(runs):
                color = COLORS[k % len(COLORS)]
                pts = []
                for c in run.rep.checkpoints:
                    if c.step is None:
                        continue
                    if layer is None:
                        m = layer_mean_alpha(c.records)
                        if m is not None:
                            pts.append((c.step, m, m, m))
                        continue
                    for r in c.records:
                        if r.layer == layer and r.alpha is not None:
                            lo, hi = band(r, (run.boot or {}).get((c.rel, layer)))
                            pts.append((c.step, r.alpha, lo, hi))
                if not pts:
                    continue
                x = np.array([p[0] for p in pts], float)
                y = np.array([p[1] for p in pts], float)
                lo = np.array([p[2] for p in pts], float)
                hi = np.array([p[3] for p in pts], float)
                top = max(top, min(float(y.max()) * 1.08, 15.0))
                (line,) = ax.plot(x, y, "-o", ms=2.5, lw=1.3, color=color, label=run.name)
                line.set_gid(_gid("series", str(k), layer or "mean"))
                if layer is not None:
                    ax.fill_between(x, lo, np.minimum(hi, 15.0), color=color, alpha=0.15, lw=0)
            ax.axhline(rules.alpha_low, color="#c0392b", ls="--", lw=0.9)
            ax.axhline(rules.alpha_high, color="#7f7f7f", ls="--", lw=0.9)
            ax.set_ylim(0, top)
            ax.set_ylabel("α", rotation=0, labelpad=10)
            ax.set_title(
                layer if layer is not None else "mean α over layers (WeightWatcher's summary)", fontsize=9
            )
            ax.grid(True, which="major", alpha=0.3)
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
        for ax in axes[:-1]:
            ax.set_xlabel("")
        axes[-1].set_xlabel("step (log scale)")
        return fig

    return _render("runs-alpha", draw, fmt)


def runs_accuracy_svg(runs: list[Run], fmt: str = "svg"):
    """Test (solid) and train (dashed) accuracy of every run on the shared step axis."""
    from grokwatch.report.run_figures import COLORS, _xaxis

    steps = _all_steps(runs)

    def draw():
        fig, (ax,) = _figure(1, 2.8)
        _xaxis(ax, steps)
        for k, run in enumerate(runs):
            color = COLORS[k % len(COLORS)]
            acc = [c for c in run.rep.checkpoints if c.step is not None and c.test_acc is not None]
            if not acc:  # a run without accuracy metadata: no empty line, no legend entry
                continue
            tr = [c for c in acc if c.train_acc is not None]
            (line,) = ax.plot(
                [c.step for c in acc],
                [c.test_acc for c in acc],
                "-o",
                ms=2.5,
                color=color,
                label=f"{run.name} test",
            )
            line.set_gid(_gid("acc", str(k)))
            ax.plot(
                [c.step for c in tr],
                [c.train_acc for c in tr],
                "--",
                lw=1,
                color=color,
                label=f"{run.name} train",
            )
            d = run.rep.drop
            if d is not None and d.step is not None:
                ax.axvline(d.step, color=color, ls=":", lw=1.2)
        ax.set_ylim(0, 1.04)
        ax.set_ylabel("accuracy")
        ax.set_title("Accuracy (solid: test, dashed: train, dotted: the test drop)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
        return fig

    return _render("runs-acc", draw, fmt)


def _cuts(ax, steps: list[int]) -> list[float]:
    fwd = ax.xaxis.get_transform()
    inv = fwd.inverted()
    t = fwd.transform(np.asarray(steps, dtype=float))
    lo, hi = ax.get_xlim()
    return [lo] + [float(inv.transform(np.array([(a + b) / 2]))[0]) for a, b in zip(t[:-1], t[1:])] + [hi]


def runs_phase_svg(runs: list[Run], fmt: str = "svg"):
    """One band row per run: the spectral phase (upper strip) and the accuracy phase (lower strip)."""
    from matplotlib.patches import Patch

    from grokwatch.report.run_figures import BAND, _xaxis

    steps = _all_steps(runs)

    def draw():
        fig, (ax,) = _figure(1, 0.55 * len(runs), extra=0.9)
        _xaxis(ax, steps)
        ax.grid(False)
        names = []
        for k, run in enumerate(runs):
            y0 = len(runs) - 1 - k
            names.append((y0 + 0.5, run.name))
            views = [c for c in run.rep.checkpoints if c.step is not None]
            for strip, lo, h in (("spectral", 0.42, 0.5), ("accuracy", 0.08, 0.3)):
                vs = views if strip == "spectral" else [c for c in views if c.acc_phase]
                if not vs:
                    continue
                cuts = _cuts(ax, [c.step for c in vs])
                phases = [c.phase if strip == "spectral" else c.acc_phase for c in vs]
                i = 0
                while i < len(vs):  # one rectangle per run of one phase (no hairline gaps)
                    p, j = phases[i], i
                    while j + 1 < len(vs) and phases[j + 1] == p:
                        j += 1
                    ax.broken_barh(
                        [(cuts[i], cuts[j + 1] - cuts[i])],
                        (y0 + lo, h),
                        color=BAND.get(p, BAND[UNKNOWN]),
                        alpha=0.85,
                        lw=0,
                    )
                    i = j + 1
            w = run.rep.warning
            if w is not None and w.step is not None:
                ax.plot([w.step], [y0 + 0.96], "v", color="black", ms=5, clip_on=False)
        ax.set_ylim(0, len(runs))
        ax.set_yticks([y for y, _ in names], [n for _, n in names])
        ax.set_xlim(*ax.get_xlim())
        handles = [Patch(color=BAND[p], alpha=0.85) for p in (PRE, GROK, ANTI, UNKNOWN)]
        ax.legend(
            handles + [ax.plot([], [], "v", color="black")[0]],
            [PRE, GROK, ANTI, UNKNOWN, "early warning"],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0,
            frameon=False,
        )
        ax.set_title("Phases per run (upper strip: spectral phase; lower: accuracy phase)")
        return fig

    return _render("runs-phase", draw, fmt)


# ---------------------------------------------------------------- the page


def _run_section(k: int, run: Run, esd_steps) -> str:
    from grokwatch.report import html as H
    from grokwatch.report import run_figures as rp
    from grokwatch.report.esd_picks import esd_picks
    from grokwatch.report.html_fits import fits_html
    from grokwatch.report.uncertainty import jump_flags

    rep = run.rep
    out = [f'<section id="run-{k}">', f"<h3>{escape(run.name)}</h3>", H._summary(rep)]
    if any(r.alpha is not None for r in rep.records):
        out.append(f"<details><summary>How sure α is ({len(run.jumps)} fit jumps)</summary>")
        out.append(fits_html(rep, jump_flags(rep), run.boot))
        out.append("</details>")
    if rep.has_accuracy:  # the single-run report's measures section, ids made unique to this run
        from grokwatch.report.measures import measures_html

        out.append("<details><summary>α and competing measures</summary>")
        out.append(rp.uniquify_ids(measures_html(rep), f"r{k}m-"))
        out.append("</details>")
    out.append("<details><summary>Per checkpoint</summary>")
    out.append(H._checkpoint_table(rep))
    out.append("</details>")
    picks = esd_picks(rep, esd_steps)
    esd = rp.esd_figures(rep, run.result, list(picks))
    esd = [(w, v, [(layer, rp.uniquify_ids(svg, f"r{k}-")) for layer, svg in figs]) for w, v, figs in esd]
    out.append(f"<details><summary>ESD plots ({len(esd)} checkpoints)</summary>")
    out.append(H._esd(esd))
    if picks.skipped:
        out.append(
            f'<p class="note">{len(picks.skipped)} more phase boundaries not drawn: '
            f"{escape(', '.join(picks.skipped))}</p>"
        )
    out.append("</details>")
    out.append("</section>")
    return "\n".join(out)


def _settings(runs: list[Run]) -> str:
    from grokwatch.report import html as H

    out = []
    for run in runs:
        out.append(f"<h3>{escape(run.name)}</h3>")
        out.append(H._settings(run.rep, str(run.result.root)))
    return "\n".join(out)


def build_multi_html(runs: list[Run], esd_steps: list[int] | None = None) -> str:
    """One page comparing the runs (see the module docstring)."""
    from grokwatch.report import html as H

    title = "grokwatch report: " + " vs ".join(r.name for r in runs)
    nav = " ".join(f'<a href="#{k}">{escape(v)}</a>' for k, v in MULTI_SECTIONS)
    rows = []
    for row in comparison_rows(runs):
        cells = [f"<td>{escape(v)}</td>" for v in row[:-1]]
        cells.append(f'<td><span class="{H.LEVEL_CLASS.get(row[-1], "")}">{escape(row[-1])}</span></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = {"summary": '<div class="scroll">' + H._table(COMPARISON_HEADER, rows, cls="runs") + "</div>"}
    body["summary"] += (
        '<p class="note">onset: first checkpoint labelled grokking; best (spectra): the last grokking checkpoint '
        "before the first anti-grokking one; first drop: test accuracy ≥ --acc-drop below its peak; first "
        "warning: the first anti-grokking label under the trend rule (under --rule paper/threshold: a trusted "
        "α below --alpha-low or a trap), with the steps to the drop; balanced: agreement "
        "averaged over the accuracy phases present; fit jumps: see “How sure α is” in each run.</p>"
    )
    has_alpha = any(r.alpha is not None for run in runs for r in run.rep.records)
    body["alpha"] = (
        f"<figure>{H.inline_svg(runs_alpha_svg(runs))}</figure>"
        '<p class="note">Bands: ± σ of each fit (± the bootstrap sd with --bootstrap). Dashed lines: '
        "--alpha-low and --alpha-high.</p>"
        if has_alpha
        else '<p class="note">No fitted α.</p>'
    )
    has_acc = any(run.rep.has_accuracy for run in runs)
    body["accuracy"] = (
        f"<figure>{H.inline_svg(runs_accuracy_svg(runs))}</figure>"
        if has_acc
        else '<p class="note">No run carries train/test accuracy metadata.</p>'
    )
    body["phases"] = f"<figure>{H.inline_svg(runs_phase_svg(runs))}</figure>"
    body["runs"] = "\n".join(_run_section(k, run, esd_steps) for k, run in enumerate(runs))
    body["settings"] = _settings(runs)
    sections = "\n".join(
        f'<section id="{k}">\n<h2>{escape(v)}</h2>\n{body[k]}\n</section>' for k, v in MULTI_SECTIONS
    )
    sub = f"{len(runs)} runs · " + " · ".join(f"{r.name}: {r.rep.level}" for r in runs)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{H.CSS}details{{margin:.3em 0}}summary{{cursor:pointer;"
        f"color:#2a5d9f}}</style>\n</head>\n<body>\n<main>\n"
        f'<h1>{escape(title)}</h1>\n<p class="sub">{escape(sub)}</p>\n<nav>{nav}</nav>\n'
        f"{sections}\n</main>\n</body>\n</html>\n"
    )
