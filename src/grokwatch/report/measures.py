"""The paper's comparison: α against its competing measures, each against the accuracy curves.

Measures per checkpoint (None where a checkpoint lacks it):
  - from the weights, for any checkpoint (`scan` records): the total L2 norm of the analysed
    matrices (or `grokwatch train`'s norm over every parameter when stored), the absolute weight
    entropy -sum |w| log|w| of the first layer;
  - from `grokwatch train`'s metadata (model and data needed): activation sparsity (first-layer
    ReLU outputs < 1), the share of exactly-zero ReLU outputs, the circuit KL (50 % of weights
    dropped);
  - α of each layer (the first MAX_ALPHA layers).

How well a measure tracks the accuracy phases (one method, docs/report.md): Spearman's rank
correlation ρ between the measure and test accuracy over the checkpoints that have both. Why
ranks: the measures live on unrelated scales and move monotonically, not linearly, with
generalization; |ρ| near 1 means the measure orders the checkpoints as test accuracy does (the
sign says in which direction), near 0 that it carries no ordering information. It needs no
threshold, so α and every other measure are scored alike. Fewer than MIN_POINTS common
checkpoints, or a constant series, give no ρ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grokwatch.measures import total_l2

__all__ = ["MAX_ALPHA", "MIN_POINTS", "Tracking", "measure_series", "spearman", "tracking", "tracking_text"]

MAX_ALPHA = 4
MIN_POINTS = 4
_TRAIN = (
    ("act_sparsity", "activation sparsity (< 1)"),
    ("act_inactive", "inactive ReLU share (= 0)"),
    ("circuit_kl", "circuit KL (50 % dropped)"),
)


@dataclass
class Tracking:
    measure: str
    n: int  # checkpoints with both the measure and test accuracy
    rho: float | None  # Spearman rank correlation with test accuracy


def _train_metric(view, key: str) -> float | None:
    for r in view.records:
        v = (r.extra or {}).get("train_metrics", {}).get(key)
        if v is not None:
            return float(v)
    return None


def measure_series(rep) -> dict[str, list[float | None]]:
    """{measure name: value per checkpoint view of `rep` (None where missing)}, names as shown."""
    views = rep.checkpoints
    out: dict[str, list[float | None]] = {}
    for k in range(min(MAX_ALPHA, len(rep.layers))):
        layer = rep.layers[k]
        out[f"α {layer}"] = [next((r.alpha for r in v.records if r.layer == layer), None) for v in views]
    l2 = []
    for v in views:
        stored = _train_metric(v, "l2_norm")
        norms = [r.l2_norm for r in v.records if r.l2_norm is not None]
        l2.append(stored if stored is not None else (total_l2(norms) if norms else None))
    out["L2 norm (total)"] = l2
    first = rep.layers[0] if rep.layers else None
    out[f"|w| entropy {first}"] = [  # scan --weight-entropy, else what `grokwatch train` stored
        next((r.abs_weight_entropy for r in v.records if r.layer == first), None)
        or _train_metric(v, "abs_weight_entropy")
        for v in views
    ]
    for key, name in _TRAIN:
        out[name] = [_train_metric(v, key) for v in views]
    return {k: s for k, s in out.items() if any(x is not None for x in s)}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), float)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x, y) -> float | None:
    """Spearman's ρ (Pearson correlation of the tie-averaged ranks); None if either is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return None if den == 0 else float((rx * ry).sum() / den)


def tracking(rep) -> list[Tracking]:
    """ρ of every measure with test accuracy over this run's checkpoints, α first, then the others."""
    test = [v.test_acc for v in rep.checkpoints]
    out = []
    for name, series in measure_series(rep).items():
        pairs = [
            (m, t)
            for m, t in zip(series, test, strict=True)
            if m is not None and t is not None and np.isfinite(m)
        ]
        rho = spearman(*zip(*pairs, strict=True)) if len(pairs) >= MIN_POINTS else None
        out.append(Tracking(name, len(pairs), rho))
    return out


def tracking_text(rep) -> str:
    """One short line for the summary: the α layer with the largest |ρ|, then every other measure,
    e.g. `α fc1 -0.62 · L2 +0.41 · |w|H -0.30 · sparsity +0.10 · inactive +0.20 · KL +0.05`."""
    scored = [t for t in tracking(rep) if t.rho is not None]
    alphas = [t for t in scored if t.measure.startswith("α ")]
    parts = []
    if alphas:
        best = max(alphas, key=lambda t: abs(t.rho))
        parts.append(f"{best.measure.removesuffix('.weight')} {best.rho:+.2f}")
    short = {"L2": "L2", "|w|": "|w|H", "act": "sparsity", "ina": "inactive", "cir": "KL"}
    for t in scored:
        if not t.measure.startswith("α "):
            parts.append(f"{short.get(t.measure[:3], short.get(t.measure[:2], t.measure))} {t.rho:+.2f}")
    return " · ".join(parts)


def normalized(series: list[float | None]) -> list[float | None]:
    """Min-max to [0, 1] over the run (a constant series maps to 0.5)."""
    vals = [v for v in series if v is not None and np.isfinite(v)]
    if not vals:
        return [None] * len(series)
    lo, hi = min(vals), max(vals)
    return [
        None if v is None or not np.isfinite(v) else (0.5 if hi == lo else (v - lo) / (hi - lo))
        for v in series
    ]


def measures_svg(rep, fmt: str = "svg"):
    """Every measure min-max normalized to [0, 1] against step, over the train/test accuracy curves
    (the paper's comparison figure); the legend gives each measure's ρ with test accuracy."""
    from grokwatch.report.run_figures import COLORS, _xaxis, plot

    views = [c for c in rep.checkpoints if c.step is not None]
    steps = [c.step for c in views]
    idx = [i for i, c in enumerate(rep.checkpoints) if c.step is not None]
    series = measure_series(rep)
    rho = {t.measure: t.rho for t in tracking(rep)}

    def draw(fig, ax):
        _xaxis(ax, steps)
        for key, color, label in (("train_acc", "#222222", "train acc"), ("test_acc", "#777777", "test acc")):
            pts = [(c.step, getattr(c, key)) for c in views if getattr(c, key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=color, lw=2.6, alpha=0.55, label=label)
        for k, (name, s) in enumerate(series.items()):
            ys = normalized([s[i] for i in idx])
            pts = [(x, y) for x, y in zip(steps, ys, strict=True) if y is not None]
            if not pts:
                continue
            r = rho.get(name)
            ls = "-" if name.startswith("α") else "--"
            lab = f"{name} (ρ {r:+.2f})" if r is not None else name
            ax.plot(*zip(*pts, strict=True), ls, color=COLORS[k % len(COLORS)], lw=1.3, label=lab)
        ax.set_ylim(-0.03, 1.05)
        ax.set_ylabel("normalized to [0, 1] / accuracy")
        ax.set_title(
            "Measures against accuracy (each min-max normalized over the run; ρ: Spearman with test acc)"
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False, fontsize=7)

    return plot("measures", draw, height=4.2, fmt=fmt)


def measures_html(rep) -> str:
    """The HTML section body: the figure and one row per measure with its ρ and what it means."""
    from html import escape

    from grokwatch.report.html import inline_svg

    rows = []
    for t in tracking(rep):
        if t.rho is None:
            verdict = f"not scored ({t.n} checkpoints with test accuracy; {MIN_POINTS} needed, or constant)"
            r = "–"
        else:
            a = abs(t.rho)
            strength = (
                "strongly" if a >= 0.8 else "moderately" if a >= 0.5 else "weakly" if a >= 0.2 else "does not"
            )
            way = "rises with" if t.rho > 0 else "falls as"
            verdict = (
                "no rank agreement with test accuracy"
                if a < 0.2
                else f"{strength} tracks: {way} test accuracy"
            )
            r = f"{t.rho:+.2f}"
        rows.append(
            f'<tr><td>{escape(t.measure)}</td><td class="n">{t.n}</td><td class="n">{r}</td><td>{escape(verdict)}</td></tr>'
        )
    table = (
        '<table><tr><th>measure</th><th class="n">checkpoints</th><th class="n">Spearman ρ</th>'
        "<th>with test accuracy over this run</th></tr>" + "".join(rows) + "</table>"
    )
    note = (
        '<p class="note">ρ: Spearman rank correlation of the measure with test accuracy over the checkpoints '
        "that have both (docs/report.md). |ρ| ≥ 0.8 strongly, ≥ 0.5 moderately, ≥ 0.2 weakly. Activation "
        "sparsity, the inactive share and circuit KL come from <code>grokwatch train</code>'s metadata; the "
        "L2 norm and the entropy are recomputed from the weights of any checkpoint.</p>"
    )
    return f"<figure>{inline_svg(measures_svg(rep))}</figure>\n{table}\n{note}"
