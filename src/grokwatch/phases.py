"""Phase labels per checkpoint: from the spectra, and from accuracy where recorded.

Spectral rule (thresholds are options; defaults from Prakash & Martin, see
`grokwatch.settings.PhaseRules`): anti-grokking if any layer has a trusted alpha below `alpha_low`
or at least `trap_min` correlation traps; else pre-grokking if any layer (or,
with pre_rule="all", every trusted layer) has a trusted alpha above
`alpha_high`; else grokking. A fit is trusted when its
tail has >= 10 eigenvalues and the layer has >= `min_evals` eigenvalues (below
20 WeightWatcher itself switches to a small-N fit): a weak fit must not flip a
label, and layers below `min_evals` eigenvalues vote neither with alpha nor
with traps. Every label carries the evidence that decided it.

The default `trap_min` is 2 because single traps appear mid-grokking on real
runs (a drifting element mean) and in the paper's own grokking phase (0-1).
"""

from __future__ import annotations

from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules, PreRule

PRE, GROK, ANTI, UNKNOWN = "pre-grokking", "grokking", "anti-grokking", "unknown"
ORDER = {UNKNOWN: -1, PRE: 0, GROK: 1, ANTI: 2}


def big_enough(r: LayerRecord, rules: PhaseRules) -> bool:
    """Layers with fewer than `min_evals` eigenvalues (e.g. a 10-class output layer) carry no vote."""
    return r.error is None and r.M >= rules.min_evals


def trusted(r: LayerRecord, rules: PhaseRules) -> bool:
    """A fit that may decide a label: a big-enough layer and a tail of >= 10 eigenvalues."""
    return big_enough(r, rules) and r.alpha is not None and not r.weak_fit


def label_checkpoint(layers: list[LayerRecord], rules: PhaseRules = PhaseRules()) -> tuple[str, str]:
    """(phase, reason) for one checkpoint's layer records."""
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


def label_records(records: list[LayerRecord], rules: PhaseRules = PhaseRules()) -> None:
    """Set `phase` and `phase_reason` on every record, grouped by checkpoint."""
    groups: dict[str, list[LayerRecord]] = {}
    for r in records:
        groups.setdefault(r.checkpoint, []).append(r)
    for group in groups.values():
        phase, reason = label_checkpoint(group, rules)
        for r in group:
            r.phase, r.phase_reason = phase, reason


def accuracy_phases(
    steps: list[int], train: list[float], test: list[float], train_fit: float = 0.99, drop: float = 0.03
) -> list[str]:
    """Phases from recorded accuracy, as the paper defines them.

    pre-grokking: before the test peak and test accuracy below halfway from its
    start to its peak; anti-grokking: after the peak, train accuracy still
    >= `train_fit` and test accuracy `drop` or more below the peak; grokking
    otherwise.
    """
    if not test:
        return []
    peak_i = max(range(len(test)), key=lambda i: (test[i], -i))
    peak, start = test[peak_i], test[0]
    half = start + 0.5 * (peak - start)
    out = []
    for i in range(len(test)):
        if i < peak_i and test[i] < half:
            out.append(PRE)
        elif i > peak_i and train[i] >= train_fit and test[i] <= peak - drop:
            out.append(ANTI)
        else:
            out.append(GROK)
    return out
