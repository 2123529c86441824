"""How well spectral labels agree with the accuracy phases of a run: the figures behind every claim.

For one run (checkpoints in step order, each with a spectral label and recorded
train/test accuracy):
  - agreement: the fraction of checkpoints whose spectral label equals the
    accuracy phase (an `unknown` label counts as a disagreement);
  - balanced agreement: the mean over the accuracy phases present in the run of
    the fraction of that phase's checkpoints labelled correctly, so a long
    phase cannot hide a missed short one;
  - the confusion matrix (spectral label, accuracy phase) -> count;
  - lead: how far the first anti-grokking label comes before the first
    checkpoint whose test accuracy is 0.03 below its peak, in checkpoints and in
    steps (positive = early, negative = late, None when either is missing);
  - false alarms: anti-grokking labels while test accuracy is within 0.03 of
    its peak so far (the running peak: what a user watching the run would see).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grokwatch.phases.accuracy import DROP, accuracy_phases, first_drop_index
from grokwatch.phases.labels import ANTI, PHASES

__all__ = ["RunScore", "pooled", "score_run"]


@dataclass
class RunScore:
    name: str
    n: int
    agree: int
    recall: dict[str, float]  # accuracy phase -> fraction of its checkpoints labelled correctly
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (spectral, accuracy) -> n
    lead_ckpts: int | None = None
    lead_steps: int | None = None
    false_alarms: int = 0
    drop_step: int | None = None
    first_anti_step: int | None = None

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else 0.0

    @property
    def balanced(self) -> float:
        return sum(self.recall.values()) / len(self.recall) if self.recall else 0.0


def score_run(
    name: str,
    steps: Sequence[int],
    labels: Sequence[str],
    train: Sequence[float | None],
    test: Sequence[float],
    drop: float = DROP,
) -> RunScore:
    """Score one run's spectral labels against its accuracy phases (see the module docstring)."""
    truth = accuracy_phases(steps, train, test, drop=drop)
    confusion: dict[tuple[str, str], int] = {}
    for s, a in zip(labels, truth):
        confusion[(s, a)] = confusion.get((s, a), 0) + 1
    recall = {}
    for ph in PHASES:
        total = sum(v for (s, a), v in confusion.items() if a == ph)
        if total:
            recall[ph] = confusion.get((ph, ph), 0) / total
    score = RunScore(name, len(labels), sum(s == a for s, a in zip(labels, truth)), recall, confusion)
    running = float("-inf")
    for lab, t in zip(labels, test):
        running = max(running, t)
        score.false_alarms += lab == ANTI and t > running - drop
    d = first_drop_index(train, test, drop)
    a = next((i for i, lab in enumerate(labels) if lab == ANTI), None)
    score.drop_step = steps[d] if d is not None else None
    score.first_anti_step = steps[a] if a is not None else None
    if d is not None and a is not None:
        score.lead_ckpts, score.lead_steps = d - a, steps[d] - steps[a]
    return score


def pooled(scores: Sequence[RunScore]) -> RunScore:
    """All runs' checkpoints together (agreement, balanced agreement, confusion, false alarms)."""
    confusion: dict[tuple[str, str], int] = {}
    for sc in scores:
        for k, v in sc.confusion.items():
            confusion[k] = confusion.get(k, 0) + v
    recall = {}
    for ph in PHASES:
        total = sum(v for (s, a), v in confusion.items() if a == ph)
        if total:
            recall[ph] = confusion.get((ph, ph), 0) / total
    return RunScore(
        "pooled",
        sum(s.n for s in scores),
        sum(s.agree for s in scores),
        recall,
        confusion,
        false_alarms=sum(s.false_alarms for s in scores),
    )
