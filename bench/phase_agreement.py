"""How well each phase rule agrees with the accuracy phases of real runs, scored honestly.

    python bench/phase_agreement.py runs/corpus/*/          # every run folder given
    python bench/phase_agreement.py RUN... --json out.json  # also the figures as JSON
    python bench/phase_agreement.py RUN... --held-out H...  # H: never fitted on, scored at the end

For each run (a `grokwatch train` folder, whose checkpoints record train/test
accuracy) and pooled over all runs, for each rule: agreement, balanced
agreement, the confusion matrix, the lead of the first anti-grokking label over
the first 0.03 test-accuracy drop (checkpoints and steps; negative = late) and
false alarms (anti-grokking while test accuracy is within 0.03 of its running
peak). The accuracy phases follow `grokwatch.phases.accuracy` (also in docs/scan.md).

Rules scored side by side: `paper` (Prakash & Martin's fixed reading), `threshold`
(grokwatch's previous default), `trend` with the shipped defaults, and `trend-loo`:
the trend rule's thresholds re-fitted by grid search on all runs *but* the one
scored (leave-one-run-out), so the figure for a run never uses that run. The
shipped defaults are the grid point that wins on all runs together; the LOO rows
say how well that choice carries to a run it has not seen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from grokwatch.phases import group_by_checkpoint, label_run
from grokwatch.phases.labels import ANTI, GROK, PHASES, PRE, UNKNOWN
from grokwatch.phases.score import RunScore, pooled, score_run
from grokwatch.scan import scan_folder
from grokwatch.settings import NormScope, PhaseRules, Rule, Settings

# The trend rule's grid: every combination is tried on the training runs of each fold.
GRID = {
    "onset_contraction": [0.06, 0.08, 0.10, 0.12],
    "onset_shrink": [0.1, 0.2, 0.3, 0.5],
    "anti_alpha": [0.0, 2.5, 2.75, 3.0, 3.25],  # 0: the alpha path off
    "anti_growth": [0.0, 0.02, 0.04],
    "anti_rebound": [0.1, 0.2, 0.3, 0.5, math.inf],  # inf: the rebound path off
    "anti_norm": [NormScope.layer, NormScope.model],  # whose norm must grow for the alpha/trap path
}


def load_run(folder: Path, workers: int) -> dict:
    """Checkpoint groups (step order) and accuracy of one run, scanned with traps (cached)."""
    result = scan_folder(folder, Settings(traps=True), workers=workers)
    groups = [g for g in group_by_checkpoint(result.records) if g[0].test_acc is not None]
    return {
        "name": folder.name,
        "groups": groups,
        "steps": [g[0].step for g in groups],
        "train": [g[0].train_acc for g in groups],
        "test": [g[0].test_acc for g in groups],
    }


_scores: dict[tuple[str, PhaseRules], RunScore] = {}


def score(run: dict, rules: PhaseRules) -> RunScore:
    """The run's labels under `rules`, scored; memoised, as every fold of the leave-one-out fit
    scores the same grid point on the same run."""
    key = (run["name"], rules)
    if key not in _scores:
        labels = [phase for phase, _ in label_run(run["groups"], rules)]
        _scores[key] = score_run(run["name"], run["steps"], labels, run["train"], run["test"])
    return _scores[key]


def objective(scores: list[RunScore]) -> tuple:
    """What a fit maximises: mean balanced agreement, then fewest late warnings (after the checkpoint
    following the first 0.03 drop), then fewest false alarms, then the earliest warning."""
    leads = [s.lead_ckpts for s in scores if s.lead_ckpts is not None]
    return (
        round(sum(s.balanced for s in scores) / len(scores), 6),
        -sum(1 for s in scores if s.drop_step is not None and (s.lead_ckpts is None or s.lead_ckpts < -1)),
        -sum(s.false_alarms for s in scores),
        min(leads) if leads else 0,
    )


def grid_rules(base: PhaseRules) -> list[PhaseRules]:
    keys = list(GRID)
    return [replace(base, **dict(zip(keys, vals))) for vals in itertools.product(*(GRID[k] for k in keys))]


def fit(runs: list[dict], base: PhaseRules) -> PhaseRules:
    """The grid point with the best objective on `runs` (ties: the first in grid order)."""
    best, best_obj = base, None
    for rules in grid_rules(base):
        obj = objective([score(r, rules) for r in runs])
        if best_obj is None or obj > best_obj:
            best, best_obj = rules, obj
    return best


def fmt_row(rule: str, s: RunScore) -> str:
    lead = "-" if s.lead_ckpts is None else f"{s.lead_ckpts:+d} ({s.lead_steps:+,})"
    rec = " ".join(f"{p[:4]} {s.recall[p]:.2f}" for p in PHASES if p in s.recall)
    return (
        f"  {rule:12s} agree {s.agreement:6.1%}  balanced {s.balanced:6.1%}  [{rec}]  "
        f"lead {lead:>16s}  false alarms {s.false_alarms:3d}"
    )


def confusion_text(s: RunScore) -> str:
    cols = [PRE, GROK, ANTI]
    rows = [PRE, GROK, ANTI, UNKNOWN]
    out = ["      spectral \\ accuracy " + "".join(f"{c[:5]:>7s}" for c in cols)]
    for r in rows:
        counts = [s.confusion.get((r, c), 0) for c in cols]
        if any(counts):
            out.append(f"      {r:24s} " + "".join(f"{n:7d}" for n in counts))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (grokwatch train output)")
    ap.add_argument("-j", "--workers", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    ap.add_argument("--confusion", action="store_true", help="print each confusion matrix")
    ap.add_argument(
        "--held-out",
        nargs="*",
        type=Path,
        default=[],
        help="runs never fitted on: scored with the shipped rule and with the thresholds fitted on RUNS",
    )
    args = ap.parse_args(argv)

    runs = [load_run(p, args.workers) for p in args.runs if p.is_dir()]
    runs = [r for r in runs if r["groups"]]
    if not runs:
        print("no run with accuracy metadata", file=sys.stderr)
        return 4
    base = PhaseRules()
    rules = {
        "paper": PhaseRules(rule=Rule.paper),
        "threshold": PhaseRules(rule=Rule.threshold),
        "trend": base,
    }
    fitted_all = fit(runs, base)
    table: dict[str, list[RunScore]] = {name: [] for name in [*rules, "trend-loo"]}
    loo_params = {}
    for i, run in enumerate(runs):
        for name, r in rules.items():
            table[name].append(score(run, r))
        others = runs[:i] + runs[i + 1 :]
        held = fit(others, base) if others else base
        loo_params[run["name"]] = {k: getattr(held, k) for k in GRID}
        table["trend-loo"].append(score(run, held))

    for i, run in enumerate(runs):
        s0 = table["paper"][i]
        print(
            f"{run['name']}: {s0.n} checkpoints, first 0.03 drop at "
            f"{'-' if s0.drop_step is None else f'{s0.drop_step:,}'}; LOO thresholds {loo_params[run['name']]}"
        )
        for name in table:
            print(fmt_row(name, table[name][i]))
            if args.confusion:
                print(confusion_text(table[name][i]))
    print(f"pooled over {len(runs)} runs:")
    for name in table:
        print(fmt_row(name, pooled(table[name])))
    print(
        f"defaults {{{', '.join(f'{k}: {getattr(base, k)}' for k in GRID)}}}; "
        f"best on all runs {{{', '.join(f'{k}: {getattr(fitted_all, k)}' for k in GRID)}}}"
    )
    held = [r for r in (load_run(p, args.workers) for p in args.held_out if p.is_dir()) if r["groups"]]
    held_table: dict[str, list[RunScore]] = {name: [] for name in [*rules, "trend-fitted"]}
    for run in held:
        for name, r in rules.items():
            held_table[name].append(score(run, r))
        held_table["trend-fitted"].append(score(run, fitted_all))
        print(f"held out {run['name']}: {held_table['paper'][-1].n} checkpoints")
        for name in held_table:
            print(fmt_row(name, held_table[name][-1]))
            if args.confusion:
                print(confusion_text(held_table[name][-1]))
    if held:
        print(f"pooled over {len(held)} held-out runs:")
        for name in held_table:
            print(fmt_row(name, pooled(held_table[name])))
    if args.json:
        out = {
            name: [
                {
                    "run": s.name,
                    "agreement": s.agreement,
                    "balanced": s.balanced,
                    "recall": s.recall,
                    "lead_ckpts": s.lead_ckpts,
                    "lead_steps": s.lead_steps,
                    "false_alarms": s.false_alarms,
                    "confusion": {f"{a}|{b}": n for (a, b), n in s.confusion.items()},
                }
                for s in scores
            ]
            for name, scores in table.items()
        }
        out["loo_params"] = loo_params
        out["held_out"] = {
            name: [{"run": s.name, "balanced": s.balanced, "false_alarms": s.false_alarms} for s in scores]
            for name, scores in held_table.items()
        }
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
