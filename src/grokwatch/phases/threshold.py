"""Single-checkpoint rules: a label from one checkpoint's layers, with fixed thresholds.

`threshold` (grokwatch's rule before the trend labeller, `--rule threshold`):
anti-grokking if any layer has a trusted alpha below `alpha_low` or at least
`trap_min` correlation traps; else pre-grokking if any layer (or, with
pre_rule="all", every trusted layer) has a trusted alpha above `alpha_high`;
else grokking. A fit is trusted when its tail has >= 10 eigenvalues and the
layer has >= `min_evals` eigenvalues (below 20 WeightWatcher itself switches to
a small-N fit), so a weak fit cannot decide a label and a 10-class output layer
votes neither with alpha nor with traps.

`paper` (Prakash & Martin's fixed reading, `--rule paper`): any layer with at
least `min_evals` eigenvalues and alpha < 2 means anti-grokking, else any with
alpha > 6 means pre-grokking, else grokking; no trust filter, no traps.

Both also serve the trend labeller for a run's first checkpoint, which has no
history to compare with.
"""

from __future__ import annotations

from grokwatch.phases.labels import ANTI, GROK, PRE, UNKNOWN
from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules, PreRule

__all__ = ["big_enough", "label_checkpoint", "paper_label", "trusted"]

PAPER_LOW, PAPER_HIGH = 2.0, 6.0  # the paper's fixed alpha bounds


def big_enough(r: LayerRecord, rules: PhaseRules) -> bool:
    """Layers with fewer than `min_evals` eigenvalues (e.g. a 10-class output layer) carry no vote."""
    return r.error is None and r.M >= rules.min_evals


def trusted(r: LayerRecord, rules: PhaseRules) -> bool:
    """A fit that may decide a label: a big-enough layer and a tail of >= 10 eigenvalues."""
    return big_enough(r, rules) and r.alpha is not None and not r.weak_fit


def label_checkpoint(layers: list[LayerRecord], rules: PhaseRules = PhaseRules()) -> tuple[str, str]:
    """(phase, reason) for one checkpoint's layer records, by the fixed-threshold rule."""
    good = [r for r in layers if trusted(r, rules)]
    low = [r for r in good if r.alpha < rules.alpha_low]
    trapped = [
        r for r in layers if big_enough(r, rules) and r.n_traps is not None and r.n_traps >= rules.trap_min
    ]
    if low or trapped:
        why = [f"{r.layer} alpha={r.alpha:.2f} < {rules.alpha_low:g}" for r in low]
        why += [f"{r.layer} {r.n_traps} traps >= {rules.trap_min}" for r in trapped]
        return ANTI, "; ".join(why)
    if not good:
        return UNKNOWN, f"no layer with a trusted fit (n_tail >= 10, >= {rules.min_evals} eigenvalues)"
    high = [r for r in good if r.alpha > rules.alpha_high]
    if high and (rules.pre_rule == PreRule.any or len(high) == len(good)):
        return PRE, "; ".join(f"{r.layer} alpha={r.alpha:.2f} > {rules.alpha_high:g}" for r in high)
    return GROK, f"all trusted layers {rules.alpha_low:g} <= alpha <= {rules.alpha_high:g}"


def paper_label(layers: list[LayerRecord], rules: PhaseRules = PhaseRules()) -> tuple[str, str]:
    """(phase, reason) by the paper's fixed rule: any alpha < 2 -> anti, any alpha > 6 -> pre."""
    voters = [r for r in layers if big_enough(r, rules) and r.alpha is not None]
    if not voters:
        return UNKNOWN, f"no layer with >= {rules.min_evals} eigenvalues and a fit"
    low = [r for r in voters if r.alpha < PAPER_LOW]
    if low:
        return ANTI, "; ".join(f"{r.layer} alpha={r.alpha:.2f} < {PAPER_LOW:g} (paper)" for r in low)
    high = [r for r in voters if r.alpha > PAPER_HIGH]
    if high:
        return PRE, "; ".join(f"{r.layer} alpha={r.alpha:.2f} > {PAPER_HIGH:g} (paper)" for r in high)
    return GROK, f"all layers {PAPER_LOW:g} <= alpha <= {PAPER_HIGH:g} (paper)"
