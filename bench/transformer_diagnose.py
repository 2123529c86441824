"""Why and where the trend rule calls a transformer run anti-grokking, and what candidate fixes would say.

    python bench/transformer_diagnose.py runs/tf-corpus/*/           # every run folder given
    python bench/transformer_diagnose.py RUN --layers                # also every layer at key checkpoints

For each run (a `grokwatch train` folder; scanned with traps, cached like `grokwatch scan`):
  - accuracy milestones (first checkpoint with train accuracy 1.0, with test accuracy >= 0.95,
    the final test accuracy) and the trend rule's labels (run-length summary, first anti-grokking
    label, false alarms as `bench/phase_agreement.py` counts them);
  - which branch of the anti-grokking criteria fires at each anti-grokking checkpoint: `alpha`
    (smoothed alpha < anti_alpha while the norm grew), `traps` (>= trap_min traps while the norm
    grew), `rebound` (a layer whose norm fell `onset_shrink` grew back `anti_rebound`), and on
    which layers (how many checkpoints each);
  - with --layers, each layer's smoothed alpha, norm growth over the window, norm rebound,
    stable-rank contraction, traps and log10 norm at the onset, the first anti label, the first
    test >= 0.95 and the last checkpoint;
  - candidate modifications of the anti-grokking criteria, evaluated by relabelling (none of them
    changes the shipped rule; the onset, i.e. every pre-grokking label, stays as shipped because
    only the criteria applied after the onset differ): false alarms, first anti label and balanced
    agreement per candidate.

The replay drives the shipped `TrendLabeller` and reads its per-layer state after every checkpoint,
so the baseline triggers are the rule's own (checked: the replayed baseline labels must equal
`label_run`'s).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from grokwatch.phases import group_by_checkpoint, label_run
from grokwatch.phases.labels import ANTI, GROK, PHASES, PRE, UNKNOWN
from grokwatch.phases.score import score_run
from grokwatch.phases.threshold import big_enough
from grokwatch.phases.trend import TrendLabeller
from grokwatch.scan import scan_folder
from grokwatch.settings import PhaseRules, Settings


def kind(layer: str) -> str:
    """The role of a transformer (or MLP) matrix from its tensor name."""
    if "unembed" in layer:
        return "unembed"
    if "embed" in layer:
        return "embed"
    if "attn" in layer:
        return "attn"
    if "mlp" in layer or layer.startswith("fc"):
        return "mlp"
    return "other"


def replay(groups: list, rules: PhaseRules) -> list[dict]:
    """Per checkpoint: the shipped label and reason, and every layer's trend features and triggers."""
    lab = TrendLabeller(rules)
    out = []
    for g in groups:
        phase, reason = lab.update(g)
        measured = [r for r in g if r.error is None]
        layers = {}
        for r in measured:
            st = lab.layers[r.layer]
            voter = big_enough(r, rules)
            a, gr = st.smoothed_alpha(), st.growth()
            b = st.rebound(rules.onset_shrink)
            growing = gr is not None and gr >= rules.anti_growth
            layers[r.layer] = {
                "voter": voter,
                "alpha": r.alpha,
                "alpha_s": a,
                "growth": gr,
                "rebound": b,
                "fell": st.max_log_norm - st.min_since_max,
                "below_peak": st.shrink(),
                "contraction": st.contraction(r) if voter else None,
                "traps": r.n_traps,
                "log_norm": r.log_norm,
                "stable_rank": r.stable_rank,
                "fire_alpha": voter and growing and a is not None and a < rules.anti_alpha,
                "fire_traps": voter and growing and r.n_traps is not None and r.n_traps >= rules.trap_min,
                "fire_rebound": b is not None and b >= rules.anti_rebound,
            }
        out.append(
            {
                "step": g[0].step,
                "train": g[0].train_acc,
                "test": g[0].test_acc,
                "phase": phase,
                "reason": reason,
                "onset": lab.onset is not None,
                "layers": layers,
            }
        )
    return out


def triggers(ck: dict) -> list[tuple[str, str]]:
    """(branch, layer) pairs that fire at this checkpoint under the shipped criteria."""
    out = []
    for name, f in ck["layers"].items():
        for br in ("alpha", "traps", "rebound"):
            if f[f"fire_{br}"]:
                out.append((br, name))
    return out


# ---- candidates: each keeps a subset of the shipped triggers (or adds a condition), given the run's history


def cand_shipped(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """the shipped criteria (alpha or traps while the norm grows, or a norm rebound)"""
    return triggers(ck)


def cand_new_overcorr(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(a) alpha/traps only for a layer that was not over-correlated at the onset checkpoint."""
    onset = next(h for h in hist if h["onset"])
    keep = []
    for br, name in triggers(ck):
        ref = onset["layers"].get(name, {})
        if br == "alpha" and ref.get("alpha_s") is not None and ref["alpha_s"] < rules.anti_alpha:
            continue
        if br == "traps" and (ref.get("traps") or 0) >= rules.trap_min:
            continue
        keep.append((br, name))
    return keep


def cand_no_attn(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(b) attention projections (qkv, out) vote neither with alpha nor traps."""
    return [(br, n) for br, n in triggers(ck) if br == "rebound" or kind(n) != "attn"]


def cand_rebound_only(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(c) the norm-rebound branch alone (anti_alpha 0, traps off)."""
    return [(br, n) for br, n in triggers(ck) if br == "rebound"]


def cand_new_high(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(d) alpha/traps only while the layer's norm is at (within 0.01 decades of) its highest so far:
    over-correlation that grows past every earlier norm, not a weight-decay equilibrium that wobbles."""
    keep = []
    for br, name in triggers(ck):
        f = ck["layers"][name]
        if br != "rebound" and (f["below_peak"] is None or f["below_peak"] > 0.01):
            continue
        keep.append((br, name))
    return keep


def cand_growth(threshold: float) -> Callable:
    def cand(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
        keep = []
        for br, name in triggers(ck):
            g = ck["layers"][name]["growth"]
            if br != "rebound" and (g is None or g < threshold):
                continue
            keep.append((br, name))
        return keep

    cand.__doc__ = f"(e) alpha/traps only while the norm grew >= {threshold:g} decades over the window"
    return cand


def cand_new_no_attn(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(a+b) both: no attention votes, and only over-correlation that is new since the onset."""
    keep = set(cand_new_overcorr(ck, hist, rules))
    return [t for t in cand_no_attn(ck, hist, rules) if t in keep]


def cand_alpha_below(limit: float) -> Callable:
    def cand(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
        keep = []
        for br, name in triggers(ck):
            a = ck["layers"][name]["alpha_s"]
            if br == "alpha" and (a is None or a >= limit):
                continue
            keep.append((br, name))
        return keep

    cand.__doc__ = (
        f"(f) the alpha branch at smoothed alpha < {limit:g} (the paper's bound) instead of anti_alpha"
    )
    return cand


def cand_alpha_falling(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(g) alpha only while the smoothed alpha is still falling (>= 0.2 lower than `window` ckpts ago)."""
    keep = []
    past = hist[-1 - rules.window] if len(hist) > rules.window else None
    for br, name in triggers(ck):
        if br == "alpha":
            now = ck["layers"][name]["alpha_s"]
            then = None if past is None else past["layers"].get(name, {}).get("alpha_s")
            if now is None or then is None or then - now < 0.2:
                continue
        keep.append((br, name))
    return keep


def cand_alpha_with_rebound(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(h) alpha/traps only once some layer's norm has climbed back >= half of anti_rebound from its low."""
    half = max((f["rebound"] or 0.0) for f in ck["layers"].values()) >= rules.anti_rebound / 2
    return [(br, n) for br, n in triggers(ck) if br == "rebound" or half]


def total_log_norm(ck: dict) -> float | None:
    """log10 of the whole model's squared Frobenius norm (every measured layer)."""
    vals = [10 ** f["log_norm"] for f in ck["layers"].values() if f["log_norm"] is not None]
    return math.log10(sum(vals)) if vals else None


def cand_model_growing(ck: dict, hist: list[dict], rules: PhaseRules) -> list:
    """(i) alpha/traps only while the whole model's squared norm grew over the window (Omnigrok's
    memorization direction), not one layer's: with weight decay the model as a whole keeps shedding norm."""
    past = hist[-1 - rules.window] if len(hist) > rules.window else hist[0]
    now, then = total_log_norm(ck), total_log_norm(past)
    growing = now is not None and then is not None and now - then >= rules.anti_growth
    return [(br, n) for br, n in triggers(ck) if br == "rebound" or growing]


CANDIDATES: dict[str, Callable] = {
    "shipped": cand_shipped,
    "a-new-overcorr": cand_new_overcorr,
    "b-no-attn": cand_no_attn,
    "c-rebound-only": cand_rebound_only,
    "d-norm-at-high": cand_new_high,
    "e-growth-0.02": cand_growth(0.02),
    "e-growth-0.05": cand_growth(0.05),
    "ab-new-no-attn": cand_new_no_attn,
    "f-alpha<2": cand_alpha_below(2.0),
    "g-alpha-falling": cand_alpha_falling,
    "h-alpha+rebound/2": cand_alpha_with_rebound,
    "i-model-norm-grows": cand_model_growing,
}


def relabel(ckpts: list[dict], cand: Callable, rules: PhaseRules) -> list[tuple[str, list]]:
    out = []
    for i, ck in enumerate(ckpts):
        if ck["phase"] in (PRE, UNKNOWN) or not ck["onset"] or i == 0:
            out.append((ck["phase"], []))
            continue
        why = cand(ck, ckpts[: i + 1], rules)
        out.append((ANTI if why else GROK, why))
    return out


def runs_text(labels: list[str], steps: list[int]) -> str:
    """Run-length summary: 'pre x12 (1-467) | grok x3 (527-598) | ...'."""
    parts, i = [], 0
    while i < len(labels):
        j = i
        while j + 1 < len(labels) and labels[j + 1] == labels[i]:
            j += 1
        parts.append(f"{labels[i][:4]} x{j - i + 1} ({steps[i]:,}-{steps[j]:,})")
        i = j + 1
    return " | ".join(parts)


def fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (grokwatch train output)")
    ap.add_argument("-j", "--workers", type=int, default=1)
    ap.add_argument("--layers", action="store_true", help="print every layer's features at key checkpoints")
    args = ap.parse_args(argv)
    rules = PhaseRules()
    totals: dict[str, Counter] = {c: Counter() for c in CANDIDATES}
    for folder in args.runs:
        if not folder.is_dir():
            continue
        res = scan_folder(folder, Settings(traps=True), workers=args.workers)
        groups = [g for g in group_by_checkpoint(res.records) if g[0].test_acc is not None]
        if not groups:
            print(f"{folder}: no checkpoint with accuracy")
            continue
        ck = replay(groups, rules)
        shipped = [p for p, _ in label_run(groups, rules)]
        assert shipped == [c["phase"] for c in ck], "replay differs from label_run"
        steps = [c["step"] for c in ck]
        train = [c["train"] for c in ck]
        test = [c["test"] for c in ck]
        fit_step = next((s for s, a in zip(steps, train) if a >= 1.0), None)
        gen_step = next((s for s, a in zip(steps, test) if a >= 0.95), None)
        onset_step = next((c["step"] for c in ck if c["onset"]), None)
        print(f"=== {folder.name}: {len(ck)} checkpoints, last step {steps[-1]:,}")
        print(
            f"  train acc 1.0 at {fmt(fit_step, ',')}; test >= 0.95 at {fmt(gen_step, ',')}; "
            f"final train {train[-1]:.4f} test {test[-1]:.4f}; peak test {max(test):.4f}; "
            f"trend onset at {fmt(onset_step, ',')}"
        )
        s = score_run(folder.name, steps, shipped, train, test)
        print(f"  trend labels: {runs_text(shipped, steps)}")
        print(
            f"  first anti {fmt(s.first_anti_step, ',')}; false alarms {s.false_alarms}; "
            f"agree {s.agree}/{s.n}; balanced {s.balanced:.1%}; drop at {fmt(s.drop_step, ',')}"
        )
        if s.false_alarms and gen_step is not None:
            fa = [c["step"] for c in ck if c["phase"] == ANTI]  # anti labels, by stage
            early = sum(st < gen_step for st in fa)
            print(f"  anti labels before test >= 0.95: {early}; from then on: {len(fa) - early}")
        # which branch, which layer
        anti = [c for c in ck if c["phase"] == ANTI]
        by = Counter()
        only = Counter()
        for c in anti:
            t = triggers(c)
            for br, n in t:
                by[(br, n)] += 1
            only[",".join(sorted({br for br, _ in t}))] += 1
        if anti:
            print(f"  anti checkpoints by the branches that fire: {dict(only)}")
            for (br, n), k in sorted(by.items(), key=lambda kv: (-kv[1], kv[0])):
                print(f"    {br:8s} {n:28s} ({kind(n):7s}) {k:3d}/{len(anti)} anti ckpts")
        if args.layers:
            first_anti = next((i for i, c in enumerate(ck) if c["phase"] == ANTI), None)
            idx = {
                "onset": next((i for i, c in enumerate(ck) if c["onset"]), None),
                "first anti": first_anti,
                "test>=0.95": next((i for i, c in enumerate(ck) if c["test"] >= 0.95), None),
                "last": len(ck) - 1,
            }
            for what, i in idx.items():
                if i is None:
                    continue
                c = ck[i]
                print(
                    f"  -- {what}: step {c['step']:,} train {c['train']:.3f} test {c['test']:.3f} [{c['phase']}]"
                )
                print(
                    "     layer                        a_fit  a_med  growth  rebound  fell  below  contr  traps  lognorm  fires"
                )
                for n, f in c["layers"].items():
                    if not f["voter"] and not f["fire_rebound"] and f["log_norm"] is None:
                        continue
                    fires = ",".join(b for b in ("alpha", "traps", "rebound") if f[f"fire_{b}"])
                    print(
                        f"     {n:28s} {fmt(f['alpha']):>5s}  {fmt(f['alpha_s']):>5s}  {fmt(f['growth'], '+.3f'):>6s}"
                        f"  {fmt(f['rebound'], '.3f'):>7s}  {fmt(f['fell'], '.2f'):>4s}  {fmt(f['below_peak'], '.2f'):>5s}"
                        f"  {fmt(f['contraction'], '.3f'):>5s}  {fmt(f['traps'], 'd'):>5s}  {fmt(f['log_norm'], '.3f'):>7s}"
                        f"  {fires}"
                    )
        print("  candidates (false alarms / anti labels / first anti / balanced agreement):")
        for name, cand in CANDIDATES.items():
            labs = relabel(ck, cand, rules)
            lab = [p for p, _ in labs]
            sc = score_run(folder.name, steps, lab, train, test)
            n_anti = sum(p == ANTI for p in lab)
            totals[name].update(fa=sc.false_alarms, anti=n_anti, runs=1)
            rec = " ".join(f"{p[:4]} {sc.recall[p]:.2f}" for p in PHASES if p in sc.recall)
            print(
                f"    {name:16s} FA {sc.false_alarms:3d}  anti {n_anti:3d}  first {fmt(sc.first_anti_step, ','):>7s}"
                f"  balanced {sc.balanced:6.1%} [{rec}]  lead {fmt(sc.lead_ckpts, '+d')}"
            )
    print("=== all runs: false alarms (anti labels) per candidate")
    for name, c in totals.items():
        doc = (CANDIDATES[name].__doc__ or "").strip().splitlines()[0]
        print(f"  {name:16s} FA {c['fa']:3d}  anti {c['anti']:3d}  {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
