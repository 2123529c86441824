"""Per-layer figure: the ESD with its power-law fit, and the shuffled ESD against MP.

    from grokwatch.report.layer_figure import layer_figure, layer_svg, save_layer_figure
    svg_text = layer_svg(evals, traps, alpha=fit.alpha, xmin=fit.xmin, title="fc1.weight @ step 100")

Left panel: log-log histogram (log-spaced bins, density) of the layer's
eigenvalues, with the fitted power law p(x) = (alpha-1)/x_min (x/x_min)^-alpha
from x_min on, scaled by the fraction of eigenvalues in the tail so it sits on
the histogram. Right panel: histogram of the shuffled, mean-1 eigenvalues (all
replicas), the Marchenko-Pastur density for Q = N/M, dashed lines at lambda_+
and at the trap threshold, traps as red ticks. When traps lie far beyond the
bulk the axis stops at ~1.6x the threshold and a note gives how many traps lie
beyond and the largest.

Output is byte-stable: matplotlib's object-oriented API (no pyplot state, Agg
canvas), a fixed `svg.hashsalt`, no date in SVG, no software tag in PNG.
matplotlib is imported inside the functions so importing this module is cheap.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from grokwatch.spectral import marchenko_pastur as mp
from grokwatch.spectral.traps import TrapResult

__all__ = [
    "EVALS_THRESH",
    "layer_figure",
    "layer_svg",
    "plot_name",
    "save_layer_figure",
    "write_layer_figures",
]

EVALS_THRESH = 1e-5
_RC = {
    "svg.hashsalt": "grokwatch",
    "svg.fonttype": "path",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "path.simplify": True,
}
_FORMATS = ("svg", "png")


def _plain(text: str) -> str:
    """Layer names are not mathtext: escape '$'."""
    return text.replace("$", r"\$")


def _esd_panel(ax, evals: np.ndarray, alpha: float | None, xmin: float | None) -> None:
    ev = np.sort(np.asarray(evals, dtype=np.float64))
    ev = ev[ev > EVALS_THRESH]
    if len(ev) == 0:
        ax.text(0.5, 0.5, "no non-zero eigenvalues", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = ev[0], ev[-1]
    if hi <= lo * 1.0001:
        hi = lo * 1.01 + 1e-12
    bins = np.geomspace(lo, hi, min(60, max(10, len(ev) // 4)) + 1)
    ax.hist(ev, bins=bins, density=True, color="#4c72b0", alpha=0.65, label="ESD")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels ("2x10^1 3x10^1 ...") overlap
    if hi / lo < 30:  # under ~1.5 decades: label 1-2-5 ticks so the axis still has numbers
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    if alpha is not None and xmin is not None and alpha > 1 and xmin > 0:
        frac = float(np.count_nonzero(ev >= xmin)) / len(ev)
        x = np.geomspace(xmin, hi, 100)
        y = frac * (alpha - 1.0) / xmin * (x / xmin) ** (-alpha)
        ax.plot(x, y, color="#c44e52", lw=2, label=f"power law, α = {alpha:.2f}")
        ax.axvline(xmin, color="#c44e52", ls=":", lw=1, label=f"x_min = {xmin:.3g}")
    # Same for y: minor labels like "4x10^-2" are wide enough to push the axis label off the
    # figure (fixed margins), so short 1-2-5 labels when the histogram spans little range.
    ax.yaxis.set_minor_formatter(NullFormatter())
    ylo, yhi = ax.get_ylim()
    if ylo > 0 and yhi / ylo < 30:
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.set_xlabel("eigenvalue λ of WᵀW (log)")
    ax.set_ylabel("density (log)")
    ax.set_title("ESD and power-law fit")
    ax.legend(loc="lower left")


def _shuffled_panel(ax, t: TrapResult) -> None:
    ev = np.asarray(t.rand_evals, dtype=np.float64)
    if len(ev) == 0 or ev[-1] <= 0:
        ax.text(0.5, 0.5, "no shuffled eigenvalues", ha="center", va="center", transform=ax.transAxes)
        return
    lm, lp = mp.edges(t.Q)
    right = max(lp, float(t.threshold)) * 1.6
    far = ev[ev > right]
    if len(far) == 0:
        right = max(right, float(ev[-1]) * 1.05)
    shown = ev[ev <= right]
    edges = np.linspace(0.0, right, 81)
    heights = np.histogram(shown, bins=edges)[0] / (len(ev) * (edges[1] - edges[0]))  # w.r.t. all eigenvalues
    label = f"shuffled ESD ({t.replicas} shuffle{'s' if t.replicas > 1 else ''})"
    ax.stairs(heights, edges, fill=True, color="#8172b2", alpha=0.6, label=label)
    x, rho = mp.density_curve(t.Q)
    ax.plot(x, rho, color="black", lw=1.5, label=f"Marchenko–Pastur, Q = {t.Q:.2f}")
    ax.axvline(lp, color="#55a868", ls="--", lw=1, label=f"λ⁺ = {lp:.3f}")
    ax.axvline(t.threshold, color="#c44e52", ls="--", lw=1, label=f"threshold = {t.threshold:.3f}")
    traps_in = t.trap_evals[t.trap_evals <= right]
    many = f" of all {t.replicas} shuffles ({len(t.trap_evals)})" if t.replicas > 1 else ""
    if len(traps_in):
        ax.plot(
            traps_in,
            np.zeros(len(traps_in)),
            linestyle="none",
            marker="^",
            markersize=9,
            color="#c44e52",
            clip_on=False,
            label="traps" + many,
        )
    if len(far):
        ax.plot(
            [right],
            [0.0],
            linestyle="none",
            marker=">",
            markersize=10,
            color="#c44e52",
            clip_on=False,
            label="traps beyond the axis",
        )
    core = rho[x > lm + 0.02 * (lp - lm)]  # at Q = 1 the density is infinite at 0: cap the axis
    ax.set_ylim(0.0, 1.2 * max(float(heights.max()), float(core.max())))
    ax.set_xlim(0.0, right)
    if len(far):
        ax.annotate(
            f"{len(far)} more beyond →\nlargest λ = {far[-1]:.4g}",
            xy=(0.98, 0.55),
            xycoords="axes fraction",
            ha="right",
            va="center",
            color="#c44e52",
            fontsize=9,
        )
    ax.set_xlabel("eigenvalue of shuffled WᵀW, rescaled to mean 1")
    ax.set_ylabel("density")
    per = " (median per shuffle)" if t.replicas > 1 else ""
    ax.set_title(
        f"Shuffled ESD vs MP: {t.n_traps} trap{'s' if t.n_traps != 1 else ''}{per}, KS = {t.ks_mp:.3f}"
    )
    ax.legend(loc="upper right")


def _figure(evals, traps: TrapResult, alpha, xmin, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins instead of constrained layout: ~3x faster per figure, same look.
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.13, top=0.83 if title else 0.9, wspace=0.2)
    ax1, ax2 = fig.subplots(1, 2)
    _esd_panel(ax1, evals, alpha, xmin)
    _shuffled_panel(ax2, traps)
    if title:
        fig.suptitle(_plain(title), fontsize=12)
    return fig


def layer_figure(
    evals: np.ndarray,
    traps: TrapResult,
    *,
    alpha: float | None = None,
    xmin: float | None = None,
    title: str = "",
    fmt: str = "svg",
) -> bytes:
    """The two-panel figure for one layer as SVG or PNG bytes (byte-stable for the same inputs)."""
    if fmt not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {fmt!r}")
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(evals, traps, alpha, xmin, title)
        buf = io.BytesIO()
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buf, format=fmt, metadata=meta)
    return buf.getvalue()


def layer_svg(
    evals: np.ndarray,
    traps: TrapResult,
    *,
    alpha: float | None = None,
    xmin: float | None = None,
    title: str = "",
) -> str:
    """SVG text for inline use in HTML (the XML prolog and DOCTYPE are stripped)."""
    svg = layer_figure(evals, traps, alpha=alpha, xmin=xmin, title=title, fmt="svg").decode("utf-8")
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def save_layer_figure(
    path: str | Path,
    evals: np.ndarray,
    traps: TrapResult,
    *,
    alpha: float | None = None,
    xmin: float | None = None,
    title: str = "",
) -> Path:
    """Write the figure; the format comes from the suffix (.svg or .png)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "svg"
    data = layer_figure(evals, traps, alpha=alpha, xmin=xmin, title=title, fmt=fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    from grokwatch.checkpoints.atomic import write_atomic

    write_atomic(path, data)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def plot_name(checkpoint: str, layer: str, ext: str) -> str:
    """Deterministic file name for one (checkpoint, layer) figure."""
    return f"{_safe(checkpoint)}__{_safe(layer)}.{ext}"


def write_layer_figures(result, out_dir: Path, all_layers: bool, ext: str) -> tuple[int, list[str]]:
    """One figure per trapped layer (or every analysed layer); returns (written, error lines)."""
    from grokwatch.analyze import layer_spectra

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
                save_layer_figure(
                    out_dir / plot_name(rel, layer, ext),
                    evals,
                    tr,
                    alpha=rec.alpha,
                    xmin=rec.xmin,
                    title=title,
                )
                written += 1
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the other figures
            problems.append(f"{rel}: cannot plot ({e})")
    return written, problems
