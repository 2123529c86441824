"""The HTML report: one self-contained file, readable offline in any browser.

No JavaScript, no external URL (not even XML namespace URIs: the HTML parser
puts inline <svg> in the SVG namespace by itself), every plot an inline SVG,
no timestamps and no absolute paths, so the same input gives the same bytes.
Sections (ids): summary, alpha, fits, accuracy, traps, esd, checkpoints, layers, settings.
"""

from __future__ import annotations

import platform
import re
from html import escape

from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN

__all__ = [
    "CSS",
    "LAYER_COLS",
    "LEVEL_CLASS",
    "PHASE_CLASS",
    "SECTIONS",
    "build_html",
    "inline_svg",
    "render_html",
]

SECTIONS = [
    ("summary", "Summary"),
    ("alpha", "α per layer"),
    ("fits", "How sure α is"),
    ("accuracy", "Accuracy"),
    ("measures", "α and competing measures"),
    ("traps", "Traps"),
    ("esd", "ESD plots"),
    ("checkpoints", "Per checkpoint"),
    ("layers", "Per layer"),
    ("settings", "Settings and versions"),
]

CSS = """
:root{--fg:#1d232a;--muted:#5d6875;--line:#d8dde3;--pre:#f2c14e;--grok:#59a14f;--anti:#e15759;--unk:#bab0ac}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:#fff}
main{max-width:1240px;margin:0 auto;padding:18px 22px 60px}
h1{font-size:1.55em;margin:.2em 0 .1em}h2{font-size:1.25em;margin:1.6em 0 .5em;padding-bottom:.2em;
border-bottom:1px solid var(--line)}h3{font-size:1.05em;margin:1.2em 0 .4em}
nav{font-size:.9em;color:var(--muted);margin:.3em 0 1em}nav a{color:#2a5d9f;margin-right:.9em;text-decoration:none}
.sub{color:var(--muted);margin:0}
table{border-collapse:collapse;font-size:.86em;margin:.3em 0}
th,td{border-bottom:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f6f8;position:sticky;top:0}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.facts th{background:none;position:static;white-space:nowrap;width:12em}
.scroll{overflow:auto;max-height:80vh;border:1px solid var(--line)}
.scroll table{margin:0;width:100%}
td.ev{min-width:22em}
table.layers{font-size:.8em}
.ph{display:inline-block;padding:0 .5em;border-radius:.7em;font-size:.92em;white-space:nowrap}
.ph-pre{background:#fbe9b7}.ph-grok{background:#cfe8c9}.ph-anti{background:#f6c3c4;font-weight:600}
.ph-unknown{background:#e6e2df}
.lvl-anti{color:#b3261e;font-weight:700}.lvl-trap{color:#9a6700;font-weight:700}.lvl-none{color:#2e7d32}
.lo{color:#b3261e;font-weight:600}.hi{color:#9a6700}.weak{color:var(--muted);font-style:italic}
figure{margin:.4em 0 1em}figure svg{width:100%;height:auto;display:block}
figcaption,.note{color:var(--muted);font-size:.88em}
.esd figure{border:1px solid var(--line);padding:4px}
"""

PHASE_CLASS = {PRE: "ph-pre", GROK: "ph-grok", ANTI: "ph-anti", UNKNOWN: "ph-unknown"}
LEVEL_CLASS = {"anti-grokking": "lvl-anti", "trap": "lvl-trap", "none": "lvl-none"}


def inline_svg(svg: str) -> str:
    """Drop the XML prolog, the RDF metadata block and namespace URIs from matplotlib's SVG."""
    svg = svg[svg.find("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    head, sep, rest = svg.partition(">")
    head = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", head)
    return head + sep + rest


def _phase(p: str | None) -> str:
    if not p:
        return ""
    return f'<span class="ph {PHASE_CLASS.get(p, "ph-unknown")}">{escape(p)}</span>'


def _num(v, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, int):
        return f"{v:,}"
    if v != v:  # nan
        return "nan"
    return f"{v:.{digits}g}" if abs(v) >= 1e4 or (v and abs(v) < 1e-3) else f"{v:.{digits}f}"


def _alpha(r, rules) -> str:
    if r is None:
        return "<td></td>"
    if r.alpha is None:
        return '<td class="n">err</td>' if r.error else '<td class="n"></td>'
    cls = "lo" if r.alpha < rules.alpha_low else "hi" if r.alpha > rules.alpha_high else ""
    if r.weak_fit:
        cls += " weak"
    mark = "?" if r.weak_fit else ""
    return f'<td class="n {cls.strip()}">{r.alpha:.2f}{mark}</td>'


def _table(header: list[str], rows: list[str], numeric: set[int] = frozenset(), cls: str = "") -> str:
    ths = "".join(f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(header))
    body = "\n".join(rows)
    return f"<table{f' class={cls}' if cls else ''}><thead><tr>{ths}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _summary(rep) -> str:
    from grokwatch.report.model import facts

    rows = []
    for k, v in facts(rep):
        if k == "level":
            v_html = f'<span class="{LEVEL_CLASS.get(v, "")}">{escape(v)}</span>'
        else:
            v_html = escape(v)
        rows.append(f"<tr><th>{escape(k)}</th><td>{v_html}</td></tr>")
    out = ['<table class="facts"><tbody>', *rows, "</tbody></table>", "<h3>Phase timeline</h3>"]
    header = (
        ["steps", "phase", "checkpoints"]
        + (["test accuracy"] if rep.has_accuracy else [])
        + ["evidence (first checkpoint of the range)"]
    )
    trs = []
    for pr in rep.timeline:
        cells = [
            f'<td class="n">{escape(pr.steps)}</td>',
            f"<td>{_phase(pr.phase)}</td>",
            f'<td class="n">{pr.count}</td>',
        ]
        if rep.has_accuracy:
            accs = [c.test_acc for c in rep.checkpoints[pr.start : pr.end + 1] if c.test_acc is not None]
            cells.append(f'<td class="n">{min(accs):.3f} – {max(accs):.3f}</td>' if accs else "<td></td>")
        cells.append(f"<td>{escape(pr.reason)}</td>")
        trs.append("<tr>" + "".join(cells) + "</tr>")
    out.append(_table(header, trs, {0, 2, 3} if rep.has_accuracy else {0, 2}))
    ag = rep.agreement
    if ag is not None and ag.compared:
        acc_cols = [p for p in (PRE, GROK, ANTI) if any(k[1] == p for k in ag.confusion)]
        spec_rows = [p for p in (PRE, GROK, ANTI) if any(k[0] == p for k in ag.confusion)]
        trs = [
            f"<tr><th>{_phase(s)}</th>"
            + "".join(f'<td class="n">{ag.confusion.get((s, a), 0)}</td>' for a in acc_cols)
            + "</tr>"
            for s in spec_rows
        ]
        out.append("<h3>Spectral phase (rows) against accuracy phase (columns)</h3>")
        out.append(_table(["spectral \\ accuracy", *acc_cols], trs, set(range(1, len(acc_cols) + 1))))
        out.append(
            f'<p class="note">Accuracy phases (docs/report.md): pre-grokking before the test peak while test '
            f"accuracy is below halfway to it; anti-grokking after the peak with train accuracy ≥ 0.99 "
            f"and test accuracy ≥ {rep.acc_drop:g} below the peak; grokking otherwise. Checkpoints "
            f"labelled unknown are left out.</p>"
        )
    return "\n".join(out)


def _short_layer_names(layers: list[str]) -> list[str]:
    """`fc1` for `fc1.weight` when every layer ends in `.weight`: narrower columns, nothing lost."""
    if layers and all(n.endswith(".weight") and len(n) > 7 for n in layers):
        return [n[: -len(".weight")] for n in layers]
    return list(layers)


def _checkpoint_table(rep) -> str:
    header = ["step", "checkpoint", *[f"α {n}" for n in _short_layer_names(rep.layers)]]
    if rep.traps_computed:
        header.append("traps")
    if rep.has_accuracy:
        header += ["train acc", "test acc"]
    header += ["phase"] + (["accuracy phase"] if rep.has_accuracy else []) + ["evidence"]
    numeric = {0} | set(range(2, 2 + len(rep.layers)))
    k = 2 + len(rep.layers)
    if rep.traps_computed:
        numeric.add(k)
        k += 1
    if rep.has_accuracy:
        numeric |= {k, k + 1}
    rows = []
    for c in rep.checkpoints:
        by = {r.layer: r for r in c.records}
        cells = [f'<td class="n">{"" if c.step is None else f"{c.step:,}"}</td>', f"<td>{escape(c.rel)}</td>"]
        cells += [_alpha(by.get(n), rep.rules) for n in rep.layers]
        if rep.traps_computed:
            cells.append(f'<td class="n">{_num(c.n_traps)}</td>')
        if rep.has_accuracy:
            cells += [f'<td class="n">{_num(c.train_acc)}</td>', f'<td class="n">{_num(c.test_acc)}</td>']
        cells.append(f"<td>{_phase(c.phase)}</td>")
        if rep.has_accuracy:
            cells.append(f"<td>{_phase(c.acc_phase)}</td>")
        cells.append(f'<td class="ev">{escape(c.reason)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<p class="note">? = weak fit (n_tail &lt; 10, not used by the phase rule); red: α below '
        f"{rep.rules.alpha_low:g}; amber: α above {rep.rules.alpha_high:g}.</p>"
        f'<div class="scroll">{_table(header, rows, numeric)}</div>'
    )


# The per-layer table: one row per (checkpoint, layer), narrow enough for a 1280 px window.
# The checkpoint file is the step cell's tooltip (the step names it), a weak fit is the `?`
# after α, the shape is N×M as in every other table, errors get a column only when there are any.
LAYER_COLS = [
    ("step", "step"),
    ("layer", "layer"),
    ("N×M", "shape"),
    ("α", "alpha"),
    ("x_min", "xmin"),
    ("D", "D"),
    ("n_tail", "n_tail"),
    ("λ_max", "lambda_max"),
    ("α weighted", "alpha_weighted"),
    ("stable rank", "stable_rank"),
    ("traps", "n_traps"),
    ("λ⁺", "lambda_plus"),
    ("threshold", "threshold"),
    ("shuffled λ_max", "rand_lambda_max"),
    ("KS to MP", "ks_mp"),
    ("phase", "phase"),
    ("error", "error"),
]


def _layer_table(rep) -> str:
    text = {"layer", "shape", "phase", "error"}
    cols = [(h, f) for h, f in LAYER_COLS if f != "error" or any(r.error for r in rep.records)]
    numeric = {i for i, (_, f) in enumerate(cols) if f not in text}
    rows = []
    for r in rep.records:
        cells = []
        for _, f in cols:
            v = getattr(r, f)
            if f == "step":
                cells.append(
                    f'<td class="n" title="{escape(r.checkpoint)}">{"" if v is None else f"{v:,}"}</td>'
                )
            elif f == "alpha":
                mark = "?" if r.weak_fit and v is not None else ""
                cells.append(f'<td class="n{" weak" if mark else ""}">{_num(v)}{mark}</td>')
            elif f == "phase":
                cells.append(f"<td>{_phase(v)}</td>")
            elif f == "shape":
                cells.append(
                    f'<td class="n">{r.N}×{r.M}</td>' if r.N else f"<td>{'×'.join(map(str, v))}</td>"
                )
            elif f in text:
                cells.append(f"<td>{escape(str(v)) if v is not None else ''}</td>")
            else:
                cells.append(f'<td class="n">{_num(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        '<p class="note">Hover a step for its checkpoint file. ? = weak fit (n_tail &lt; 10). '
        "Every field of every row is also in <code>grokwatch scan --traps --format csv</code>.</p>"
    )
    return f'{note}<div class="scroll">{_table([h for h, _ in cols], rows, numeric, cls="layers")}</div>'


def _versions() -> list[tuple[str, str]]:
    from importlib import metadata

    from grokwatch import __version__

    out = [("grokwatch", __version__), ("python", platform.python_version())]
    for pkg in ("numpy", "scipy", "matplotlib", "safetensors"):
        try:
            out.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            pass
    return out


def _settings(rep, root: str) -> str:
    s, r = rep.settings, rep.rules
    items = [
        ("folder", rep.name),
        ("fit", s.fit),
        ("traps", "yes" if s.traps else "no"),
        ("seed", str(s.seed)),
        ("replicas", "default (5 when M < 100, else 1)" if s.replicas is None else str(s.replicas)),
        ("layers", ", ".join(s.layers) or "all"),
        ("exclude", ", ".join(s.exclude) or "none"),
        (
            "phase rule",
            f"anti-grokking: a trusted α < {r.alpha_low:g} or ≥ {r.trap_min} traps in a layer; "
            f"pre-grokking: a trusted α > {r.alpha_high:g}; grokking otherwise; trusted = "
            f"n_tail ≥ 10 and ≥ {r.min_evals} eigenvalues",
        ),
        ("accuracy drop", f"{rep.acc_drop:g}"),
    ]
    rows = [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in items + _versions()]
    out = ['<table class="facts"><tbody>', *rows, "</tbody></table>"]
    if rep.errors:
        prefix = root.rstrip("/") + "/"
        errs = "".join(f"<li>{escape(e.replace(prefix, ''))}</li>" for e in rep.errors)
        out.append(f"<h3>Skipped files</h3><ul>{errs}</ul>")
    return "\n".join(out)


def _esd(esd) -> str:
    if not esd:
        return '<p class="note">No ESD plots.</p>'
    out = [
        '<p class="note">Left: the layer\'s eigenvalues with the fitted power law (from x_min). Right: the '
        "eigenvalues of the element-shuffled layer against the Marchenko–Pastur law; eigenvalues past the "
        "threshold are correlation traps.</p>"
    ]
    for why, view, figs in esd:
        out.append(
            f'<h3>{escape(why)}: {escape(view.label)} <span class="note">({escape(view.rel)})</span> '
            f"{_phase(view.phase)}</h3>"
        )
        for layer, svg in figs:
            if layer == "error":
                out.append(svg)
            else:
                out.append(f'<figure class="esd">{inline_svg(svg)}</figure>')
        if len(figs) < len(view.records):
            out.append(f'<p class="note">{len(figs)} of {len(view.records)} layers shown.</p>')
    return "\n".join(out)


def render_html(rep, plots: dict[str, str], esd, root: str = "", fits: str = "", esd_note: str = "") -> str:
    """The page. `plots`: svg text by section id (alpha, accuracy, traps); `esd`: from report_plots.esd_figures;
    `fits`: the "How sure α is" section (report.html_fits); `esd_note`: a line under the ESD plots."""
    title = f"grokwatch report: {rep.name}"
    nav = " ".join(f'<a href="#{k}">{escape(v)}</a>' for k, v in SECTIONS)
    body = {
        "summary": _summary(rep),
        "fits": fits or '<p class="note">No fitted α.</p>',
        "checkpoints": _checkpoint_table(rep),
        "layers": _layer_table(rep),
        "settings": _settings(rep, root),
        "measures": plots.get("measures_html") or '<p class="note">No measure against test accuracy.</p>',
        "esd": _esd(esd) + (f'\n<p class="note">{escape(esd_note)}</p>' if esd_note else ""),
    }
    for key, missing in (
        ("alpha", "No fitted α."),
        ("accuracy", "These checkpoints carry no train/test accuracy metadata."),
        ("traps", "Traps were not computed (--no-traps)."),
    ):
        svg = plots.get(key)
        body[key] = f"<figure>{inline_svg(svg)}</figure>" if svg else f'<p class="note">{missing}</p>'
    sections = "\n".join(
        f'<section id="{k}">\n<h2>{escape(v)}</h2>\n{body[k]}\n</section>' for k, v in SECTIONS
    )
    sub = f"{len(rep.checkpoints)} checkpoints · {len(rep.layers)} layers · level: {rep.level}"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<h1>{escape(title)}</h1>\n<p class="sub">{escape(sub)}</p>\n<nav>{nav}</nav>\n'
        f"{sections}\n</main>\n</body>\n</html>\n"
    )


def build_html(rep, result, esd_steps: list[int] | None = None, boot: dict | None = None) -> str:
    """Plots + page for a report model and the ScanResult it came from.

    ESD plots at the first checkpoint, every phase boundary, the first early
    warning, the best test accuracy and the last checkpoint (`report.esd_picks`),
    or at `esd_steps`; `boot`: {(rel, layer): Bootstrap} from `--bootstrap N`.
    """
    from grokwatch.report import run_figures as rp
    from grokwatch.report.esd_picks import esd_picks
    from grokwatch.report.html_fits import fits_html
    from grokwatch.report.uncertainty import jump_flags

    plots = {}
    fits = ""
    if any(r.alpha is not None for r in rep.records):
        plots["alpha"] = rp.alpha_svg(rep, boot)
        fits = fits_html(rep, jump_flags(rep), boot)
    if rep.has_accuracy:
        from grokwatch.report.measures import measures_html

        plots["accuracy"] = rp.accuracy_svg(rep)
        plots["measures_html"] = measures_html(rep)
    if rep.traps_computed:
        plots["traps"] = rp.traps_svg(rep)
    picks = esd_picks(rep, esd_steps)
    esd = rp.esd_figures(rep, result, list(picks))
    note = ""
    if picks.skipped:
        note = (
            f"{len(picks.skipped)} more phase boundaries not drawn (choose with --esd-steps): "
            + ", ".join(picks.skipped)
        )
    return render_html(rep, plots, esd, root=str(result.root), fits=fits, esd_note=note)
