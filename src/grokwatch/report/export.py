"""The report for machines: `report --json F` (the model as JSON) and `--figures DIR` (standalone plots).

JSON layout (`SCHEMA` = 2; 2 renamed the per-checkpoint "warning" to "over_correlated"), the same for one run and several:

    {"schema": 2,
     "runs": [{"name", "level", "summary": {label: text},           # the summary lines
               "onset", "best", "peak", "drop", "warning", "first_anti",
               "over_correlated": {step, checkpoint, ...} | null, "n_over_correlated",
               "agreement": {compared, agree, fraction, balanced, false_alarms, confusion} | null,
               "timeline": [{phase, first_step, last_step, checkpoints, reason}],
               "checkpoints": [{step, checkpoint, phase, acc_phase, train_acc, test_acc, n_traps,
                                mean_alpha, over_correlated, layers: {layer: {alpha, sigma, D, xmin,
                                n_tail, weak_fit, jump, bootstrap}}}],
               "errors": [...]}],
     "comparison": {"header": [...], "rows": [[...], ...]}}    # the runs-compared table

Non-finite numbers become null. Figures: per run `<name>-alpha`, `-accuracy`,
`-traps` and `<name>-esd-<step>-<layer>`; with several runs also `runs-alpha`,
`runs-accuracy`, `runs-phases`; `.svg` or `.png`, written atomically.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

__all__ = ["SCHEMA", "report_dict", "runs_json", "write_figures"]

SCHEMA = 2


def _num(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _view(v) -> dict | None:
    if v is None:
        return None
    return {
        "step": v.step,
        "checkpoint": v.rel,
        "phase": v.phase,
        "reason": v.reason,
        "train_acc": _num(v.train_acc),
        "test_acc": _num(v.test_acc),
        "over_correlated": v.warning,
    }


def _measures(rep) -> dict:
    """α and the competing measures per checkpoint (raw values) and their Spearman ρ with test accuracy."""
    from grokwatch.report.measures import measure_series, tracking

    return {
        "steps": [c.step for c in rep.checkpoints],
        "series": {k: [_num(v) for v in s] for k, s in measure_series(rep).items()},
        "tracking": [{"measure": t.measure, "n": t.n, "spearman_rho": _num(t.rho)} for t in tracking(rep)],
    }


def report_dict(run) -> dict:
    """One run (a multi_run.Run) as plain JSON-able data."""
    from grokwatch.report.model import facts
    from grokwatch.report.uncertainty import layer_mean_alpha

    rep = run.rep
    boot = run.boot or {}
    ag = rep.agreement
    cks = []
    for c in rep.checkpoints:
        layers = {}
        for r in c.records:
            b = boot.get((c.rel, r.layer))
            layers[r.layer] = {
                "alpha": _num(r.alpha),
                "sigma": _num(r.sigma),
                "D": _num(r.D),
                "xmin": _num(r.xmin),
                "n_tail": r.n_tail,
                "weak_fit": r.weak_fit,
                "n_traps": r.n_traps,
                "jump": run.jumps.get((c.rel, r.layer)),
                "bootstrap": None if b is None else {k: _num(v) for k, v in b.to_dict().items()},
            }
        cks.append(
            {
                "step": c.step,
                "checkpoint": c.rel,
                "phase": c.phase,
                "reason": c.reason,
                "acc_phase": c.acc_phase,
                "train_acc": _num(c.train_acc),
                "test_acc": _num(c.test_acc),
                "n_traps": c.n_traps,
                "mean_alpha": _num(layer_mean_alpha(c.records)),
                "over_correlated": c.warning,
                "layers": layers,
            }
        )
    return {
        "name": run.name,
        "level": rep.level,
        "summary": dict(facts(rep)),
        "onset": _view(rep.onset),
        "best": _view(rep.best),
        "peak": _view(rep.peak),
        "drop": _view(rep.drop),
        "warning": _view(rep.warning),
        "first_anti": _view(rep.first_anti),
        "lead_steps": rep.lead(rep.warning),
        "over_correlated": _view(rep.over_correlated),
        "n_over_correlated": rep.n_over_correlated,
        "agreement": None
        if ag is None
        else {
            "compared": ag.compared,
            "agree": ag.agree,
            "fraction": ag.fraction,
            "balanced": ag.balanced,
            "false_alarms": ag.false_alarms,
            "confusion": [
                {"spectral": s, "accuracy": a, "n": n} for (s, a), n in sorted(ag.confusion.items())
            ],
        },
        "timeline": [
            {
                "phase": pr.phase,
                "first_step": pr.first_step,
                "last_step": pr.last_step,
                "checkpoints": pr.count,
                "reason": pr.reason,
            }
            for pr in rep.timeline
        ],
        "layers": list(rep.layers),
        "checkpoints": cks,
        "measures": _measures(rep),
        "fit_jumps": len(run.jumps),
        "errors": [e.replace(str(run.result.root).rstrip("/") + "/", "") for e in rep.errors],
    }


def runs_json(runs: list) -> str:
    """The JSON text of `report --json` (sorted keys, 2-space indent, newline at the end)."""
    from grokwatch.report.multi_run import COMPARISON_HEADER, comparison_rows

    data = {
        "schema": SCHEMA,
        "runs": [report_dict(r) for r in runs],
        "comparison": {"header": COMPARISON_HEADER, "rows": comparison_rows(runs)},
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def write_figures(out: Path, runs: list, fmt: str = "svg", esd_steps: list[int] | None = None) -> list[Path]:
    """Write every figure of the report as a standalone file under `out`; returns the paths written."""
    from grokwatch.analyze import layer_spectra
    from grokwatch.checkpoints.atomic import write_atomic
    from grokwatch.report import multi_run as mr
    from grokwatch.report import run_figures as rp
    from grokwatch.report.esd_picks import esd_picks
    from grokwatch.report.layer_figure import layer_figure

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, data) -> None:
        path = out / f"{name}.{fmt}"
        if isinstance(data, str):
            if not data.startswith("<?xml"):
                data = '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n' + data
            data = _standalone(data)
        write_atomic(path, data)
        written.append(path)

    if len(runs) > 1:
        if any(r.alpha is not None for run in runs for r in run.rep.records):
            put("runs-alpha", mr.runs_alpha_svg(runs, fmt))
        if any(run.rep.has_accuracy for run in runs):
            put("runs-accuracy", mr.runs_accuracy_svg(runs, fmt))
        put("runs-phases", mr.runs_phase_svg(runs, fmt))
    for run in runs:
        rep, base = run.rep, _safe(run.name)
        if any(r.alpha is not None for r in rep.records):
            put(f"{base}-alpha", rp.alpha_svg(rep, run.boot, fmt=fmt))
        if rep.has_accuracy:
            put(f"{base}-accuracy", rp.accuracy_svg(rep, fmt=fmt))
            from grokwatch.report.measures import measures_svg

            put(f"{base}-measures", measures_svg(rep, fmt=fmt))
        if rep.traps_computed:
            put(f"{base}-traps", rp.traps_svg(rep, fmt=fmt))
        by_rel = {ck.rel: ck for ck in run.result.checkpoints}
        for _why, view in esd_picks(rep, esd_steps):
            ck = by_rel.get(view.rel)
            if ck is None:
                continue
            recs = {r.layer: r for r in view.records}
            layers = [r.layer for r in view.records][: rp.MAX_ESD_LAYERS]
            tag = view.step if view.step is not None else _safe(view.rel)
            for layer, evals, t in layer_spectra(ck, layers, rep.settings):
                rec = recs[layer]
                data = layer_figure(
                    evals,
                    t,
                    alpha=rec.alpha,
                    xmin=rec.xmin,
                    title=f"{run.name}: {layer} @ {view.label}",
                    fmt=fmt,
                )
                put(f"{base}-esd-{tag}-{_safe(layer)}", data.decode("utf-8") if fmt == "svg" else data)
    return written


def _standalone(svg: str) -> str:
    """Inline SVG text (namespace dropped for HTML) as a file browsers and editors open: restore xmlns."""
    start = svg.find("<svg")
    head_end = svg.find(">", start)
    head = svg[start:head_end]
    if "xmlns=" not in head:
        head += ' xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    return svg[:start] + head + svg[head_end:]
