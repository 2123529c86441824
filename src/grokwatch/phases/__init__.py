"""Phase labels per checkpoint: from the spectra (three rules), and from accuracy where recorded.

    labels.py     the phase names
    threshold.py  single-checkpoint rules: `threshold` (fixed alpha/trap thresholds) and `paper`
    trend.py      the default `trend` rule: each layer's trajectory over the run, causally
    accuracy.py   the accuracy phases, the answer key the labels are scored against
    score.py      agreement, balanced agreement, lead and false alarms of a run's labels

`label_records` labels a whole scan; whatever the rule, the label of a
checkpoint depends only on that checkpoint and the ones before it (in step
order), so a live monitor and a later report show the same labels.
"""

from __future__ import annotations

from collections.abc import Iterable

from grokwatch.phases.accuracy import accuracy_phases
from grokwatch.phases.labels import ANTI, GROK, ORDER, PHASES, PRE, UNKNOWN
from grokwatch.phases.threshold import big_enough, label_checkpoint, paper_label, trusted
from grokwatch.phases.trend import TrendLabeller
from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules, Rule

__all__ = [
    "ANTI",
    "GROK",
    "ORDER",
    "PHASES",
    "PRE",
    "UNKNOWN",
    "PhaseRules",
    "TrendLabeller",
    "accuracy_phases",
    "big_enough",
    "group_by_checkpoint",
    "label_checkpoint",
    "label_records",
    "label_run",
    "paper_label",
    "trusted",
]


def group_by_checkpoint(records: Iterable[LayerRecord]) -> list[list[LayerRecord]]:
    """Records grouped per checkpoint, in step order (no step: last, in the order seen)."""
    groups: dict[str, list[LayerRecord]] = {}
    for r in records:
        groups.setdefault(r.checkpoint, []).append(r)
    out = list(groups.values())
    out.sort(key=lambda g: (g[0].step is None, g[0].step if g[0].step is not None else 0))
    return out


def label_run(
    checkpoints: list[list[LayerRecord]], rules: PhaseRules = PhaseRules()
) -> list[tuple[str, str]]:
    """(phase, reason) for each checkpoint of a run, given in step order; causal for every rule."""
    if rules.rule == Rule.paper:
        return [paper_label(g, rules) for g in checkpoints]
    if rules.rule == Rule.threshold:
        return [label_checkpoint(g, rules) for g in checkpoints]
    labeller = TrendLabeller(rules)
    return [labeller.update(g) for g in checkpoints]


def label_records(records: list[LayerRecord], rules: PhaseRules = PhaseRules()) -> None:
    """Set `phase` and `phase_reason` on every record (one label per checkpoint)."""
    groups = group_by_checkpoint(records)
    for group, (phase, reason) in zip(groups, label_run(groups, rules)):
        for r in group:
            r.phase, r.phase_reason = phase, reason
