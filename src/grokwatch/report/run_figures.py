"""Plots of the HTML report, as inline SVG text (byte-stable for the same input).

Run plots share one x-axis (step, log; symlog when step 0 is present):
  - alpha per layer against step, with the alpha_low / alpha_high lines and the
    spectral phases as coloured bands; weak fits hollow, clipped values as ^;
  - train / test accuracy against step, bands = accuracy phases, the early
    warning and the accuracy drop as vertical lines;
  - correlation traps per layer against step.
ESD figures (power-law fit + shuffled ESD against Marchenko-Pastur) come from
`grokwatch.report.layer_figure.layer_svg`; `esd_figures` recomputes the eigenvalues of a few
checkpoints for them (same seeds as the scan, so trap counts match the table).

Byte stability: object-oriented matplotlib on an Agg canvas (no pyplot
state), `svg.hashsalt` fixed per figure (distinct, so the ids of several
inline SVGs do not collide), `metadata={"Date": None}`.
"""

from __future__ import annotations

import io

import numpy as np

from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN

__all__ = [
    "BAND",
    "COLORS",
    "MAX_ESD_LAYERS",
    "MAX_LINES",
    "accuracy_svg",
    "alpha_svg",
    "esd_figures",
    "plot",
    "traps_svg",
    "uniquify_ids",
]

BAND = {PRE: "#f2c14e", GROK: "#59a14f", ANTI: "#e15759", UNKNOWN: "#bab0ac"}
COLORS = [
    "#4e79a7",
    "#f28e2b",
    "#76b7b2",
    "#b07aa1",
    "#9c755f",
    "#ff9da7",
    "#edc948",
    "#59a14f",
    "#e15759",
    "#bab0ac",
]
MAX_LINES = 10  # layers drawn in the run plots (the table has them all)
MAX_ESD_LAYERS = 6  # layers per ESD checkpoint
_RC = {
    "svg.fonttype": "path",
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.fontsize": 8,
    "path.simplify": True,
}


def _new_figure(height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, height), dpi=100)
    FigureCanvasAgg(fig)
    # fixed margins (inches), not constrained layout: every run plot gets the same axes box,
    # so their step axes line up on the page whatever the legend or tick labels hold
    fig.subplots_adjust(left=0.75 / 10, right=1 - 2.3 / 10, bottom=0.6 / height, top=1 - 0.35 / height)
    return fig, fig.add_subplot(1, 1, 1)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.find("<svg") :]


def plot(salt: str, draw, height: float = 3.6, fmt: str = "svg"):
    """Draw with `draw(fig, ax)` under the report's rc settings and return inline SVG
    (or, with fmt="png", PNG bytes for a standalone file; `--figures`)."""
    import matplotlib

    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"grokwatch-{salt}"}):
        fig, ax = _new_figure(height)
        draw(fig, ax)
        if fmt == "png":
            buf = io.BytesIO()
            fig.savefig(buf, format="png", metadata={"Software": None})
            return buf.getvalue()
        return uniquify_ids(_svg(fig), f"{salt}-")


def _xaxis(ax, steps: list[int]) -> None:
    """Log x-axis over the steps (symlog when step 0 is there), a little padding each side."""
    pos = [s for s in steps if s > 0]
    if steps and min(steps) <= 0:
        thresh = min(pos) if pos else 1
        ax.set_xscale("symlog", linthresh=thresh, linscale=0.3)
        hi = max(max(pos) * 1.3, thresh) if pos else 1
        ax.set_xlim(-0.0 if not pos else -thresh * 0.1, hi)
    else:
        ax.set_xscale("log")
        ax.set_xlim(min(pos) / 1.3, max(pos) * 1.3)
    ax.set_xlabel("step (log scale)")
    ax.grid(True, which="major", alpha=0.3)


def _bands(ax, steps: list[int], phases: list[str]) -> None:
    """Shade each checkpoint's phase, boundaries halfway between neighbours in axis coordinates."""
    if not steps:
        return
    fwd = ax.xaxis.get_transform()
    inv = fwd.inverted()
    t = fwd.transform(np.asarray(steps, dtype=float))
    lo, hi = ax.get_xlim()
    cuts = [lo] + [float(inv.transform(np.array([(a + b) / 2]))[0]) for a, b in zip(t[:-1], t[1:])] + [hi]
    i = 0
    while i < len(phases):  # merge runs of one phase into one band
        j = i
        while j + 1 < len(phases) and phases[j + 1] == phases[i]:
            j += 1
        ax.axvspan(cuts[i], cuts[j + 1], color=BAND.get(phases[i], BAND[UNKNOWN]), alpha=0.16, lw=0)
        i = j + 1
    ax.set_xlim(lo, hi)


def _band_legend(ax, phases: list[str], extra=()) -> None:
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    for p in (PRE, GROK, ANTI, UNKNOWN):
        if p in phases:
            handles.append(Patch(color=BAND[p], alpha=0.35))
            labels.append(p)
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)


def _train_metric(view, key: str):
    from grokwatch.report.measures import _train_metric as get

    return get(view, key)


def alpha_svg(rep, boot: dict | None = None, fmt: str = "svg"):
    """α per layer against step; band = ± σ of the fit (the bootstrap's 16-84 % range when `boot` has it);
    black dashed: the layer mean (WeightWatcher's summary α)."""
    from grokwatch.report.uncertainty import band, layer_mean_alpha

    views = [c for c in rep.checkpoints if c.step is not None]
    steps = [c.step for c in views]
    boot = boot or {}

    def draw(fig, ax):
        _xaxis(ax, steps)
        _bands(ax, steps, [c.phase for c in views])
        alphas = [r.alpha for c in views for r in c.records if r.alpha is not None]
        top = max(rep.rules.alpha_high + 1.5, min(max(alphas, default=0) * 1.08, 15.0))
        for k, layer in enumerate(rep.layers[:MAX_LINES]):
            color = COLORS[k % len(COLORS)]
            pts = [
                (c.step, r.alpha, r.weak_fit)
                for c in views
                for r in c.records
                if r.layer == layer and r.alpha is not None
            ]
            if not pts:
                continue
            x = np.array([p[0] for p in pts], float)
            y = np.array([p[1] for p in pts], float)
            weak = np.array([p[2] for p in pts], bool)
            ax.plot(x, np.minimum(y, top), color=color, lw=1.3, label=layer)
            ok = ~weak & (y <= top)
            ax.plot(x[ok], y[ok], "o", color=color, ms=3.5)
            wk = weak & (y <= top)
            ax.plot(x[wk], y[wk], "o", mfc="white", mec=color, ms=4)
            ax.plot(x[y > top], np.full((y > top).sum(), top), "^", color=color, ms=6, clip_on=False)
            lo, hi = [], []
            for c in views:
                for r in c.records:
                    if r.layer == layer and r.alpha is not None:
                        a, b = band(r, boot.get((c.rel, r.layer)))
                        lo.append(a)
                        hi.append(b)
            lo, hi = np.minimum(np.asarray(lo, float), top), np.minimum(np.asarray(hi, float), top)
            ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        means = [(c.step, layer_mean_alpha(c.records)) for c in views]
        means = [(s, m) for s, m in means if m is not None]
        if len(rep.layers) > 1 and means:
            ax.plot(
                [s for s, _ in means],
                [min(m, top) for _, m in means],
                color="black",
                ls="--",
                lw=1.6,
                label="mean α (layers)",
            )
        ax.axhline(rep.rules.alpha_low, color="#c0392b", ls="--", lw=1, label=f"α = {rep.rules.alpha_low:g}")
        ax.axhline(
            rep.rules.alpha_high, color="#7f7f7f", ls="--", lw=1, label=f"α = {rep.rules.alpha_high:g}"
        )
        ax.set_ylim(0, top)
        ax.set_ylabel("power-law α")
        spread = "bootstrap 16–84 %" if boot else "± σ"
        ax.set_title(f"α per layer, {spread} (bands: spectral phase; hollow: weak fit; ▲: above the axis)")
        _band_legend(ax, [c.phase for c in views])

    return plot("alpha", draw, fmt=fmt)


def accuracy_svg(rep, fmt: str = "svg"):
    views = [c for c in rep.checkpoints if c.step is not None]
    steps = [c.step for c in views]
    acc = [c for c in views if c.test_acc is not None]

    def draw(fig, ax):
        _xaxis(ax, steps)
        _bands(ax, [c.step for c in acc], [c.acc_phase or UNKNOWN for c in acc])
        tr = [c for c in acc if c.train_acc is not None]
        ax.plot([c.step for c in tr], [c.train_acc for c in tr], "-o", ms=3, color="#4e79a7", label="train")
        ax.plot([c.step for c in acc], [c.test_acc for c in acc], "-o", ms=3, color="#f28e2b", label="test")
        for key, color, label in (  # --corrupt runs: memorization and unlearning of the wrong labels
            ("train_acc_clean", "#4e79a7", "train, clean labels"),
            ("train_acc_corrupt", "#e15759", "train, corrupted labels"),
            ("train_acc_corrupt_true", "#59a14f", "corrupted examples, true label"),
        ):
            pts = [(c.step, v) for c in acc if (v := _train_metric(c, key)) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), "--", lw=1.2, color=color, label=label)
        for view, color, text in (
            (rep.warning, "#c0392b", "early warning"),
            (rep.drop, "#333333", "test drop"),
        ):
            if view is not None and view.step is not None:
                ax.axvline(view.step, color=color, ls=":", lw=1.5, label=f"{text} ({view.step:,})")
        ax.set_ylim(0, 1.04)
        ax.set_ylabel("accuracy")
        ax.set_title("Accuracy (bands: accuracy phase)")
        _band_legend(ax, [c.acc_phase for c in acc])

    return plot("accuracy", draw, fmt=fmt)


def traps_svg(rep, fmt: str = "svg"):
    views = [c for c in rep.checkpoints if c.step is not None]
    steps = [c.step for c in views]

    def draw(fig, ax):
        _xaxis(ax, steps)
        _bands(ax, steps, [c.phase for c in views])
        most = 0
        for k, layer in enumerate(rep.layers[:MAX_LINES]):
            pts = [
                (c.step, r.n_traps)
                for c in views
                for r in c.records
                if r.layer == layer and r.n_traps is not None
            ]
            if pts:
                most = max(most, max(p[1] for p in pts))
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    "-o",
                    ms=3,
                    lw=1.3,
                    color=COLORS[k % len(COLORS)],
                    label=layer,
                )
        ax.axhline(
            rep.rules.trap_min,
            color="#c0392b",
            ls="--",
            lw=1,
            label=f"anti-grokking rule: {rep.rules.trap_min} traps",
        )
        ax.set_ylim(-0.2, max(most, rep.rules.trap_min) + 1)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("correlation traps")
        ax.set_title("Correlation traps per layer (bands: spectral phase)")
        _band_legend(ax, [c.phase for c in views])

    return plot("traps", draw, height=3.0, fmt=fmt)


def esd_figures(rep, result, picks: list[tuple[str, object]]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """[(why, checkpoint label, [(layer, svg)])] for the picked (why, CheckpointView) pairs.

    Re-reads the weights of those checkpoints only; a layer that fails is
    skipped with a note in place of its figure.
    """
    from grokwatch.analyze import layer_spectra
    from grokwatch.report.layer_figure import layer_svg

    by_rel = {ck.rel: ck for ck in result.checkpoints}
    out = []
    for n, (why, view) in enumerate(picks):
        ck = by_rel.get(view.rel)
        figs: list[tuple[str, str]] = []
        if ck is None:
            continue
        recs = {r.layer: r for r in view.records}
        try:
            # view.records are the selected, analysed layers of this checkpoint, in file order
            layers = [r.layer for r in view.records][:MAX_ESD_LAYERS]
            for m, (layer, evals, t) in enumerate(layer_spectra(ck, layers, rep.settings)):
                rec = recs[layer]
                svg = layer_svg(evals, t, alpha=rec.alpha, xmin=rec.xmin, title=f"{layer} @ {view.label}")
                figs.append((layer, uniquify_ids(svg, f"e{n}-{m}-")))
        except Exception as e:  # noqa: BLE001 - a figure must never sink the report
            figs.append(("error", f"<p class=note>ESD plots unavailable: {type(e).__name__}: {e}</p>"))
        out.append((why, view, figs))
    return out


def uniquify_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and its references) so several inline SVGs can share one HTML page."""
    import re

    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    if not ids:
        return svg

    def ref(m: re.Match) -> str:
        name = m.group(2)
        return f"{m.group(1)}{prefix}{name}" if name in ids else m.group(0)

    svg = re.sub(r'(\sid=")([^"]+)(?=")', ref, svg)
    svg = re.sub(r"(url\(#)([^)]+)(?=\))", ref, svg)
    return re.sub(r'(href="#)([^"]+)(?=")', ref, svg)
