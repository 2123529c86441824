"""Accuracy phases and the agreement figures, against hand-computed answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

from grokwatch.phases import ANTI, GROK, PRE, accuracy_phases
from grokwatch.phases.score import pooled, score_run

FIX = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "phase_scoring.json").read_text())


def test_accuracy_phases_follow_the_written_definition():
    assert accuracy_phases(FIX["steps"], FIX["train"], FIX["test"]) == FIX["expected"]["accuracy_phases"]


def test_accuracy_phase_edge_cases():
    steps = [1, 2, 3, 4]
    # never fits the training set: never groks
    assert accuracy_phases(steps, [0.5, 0.6, 0.7, 0.8], [0.1, 0.5, 0.9, 0.9]) == [PRE] * 4
    # memorizes, test accuracy rises less than 0.1 above the post-fit baseline: never groks
    assert accuracy_phases(steps, [1.0] * 4, [0.10, 0.12, 0.15, 0.13]) == [PRE] * 4
    # train accuracy no longer fitted after the peak: not anti-grokking (the training set was lost)
    assert accuracy_phases(steps, [1.0, 1.0, 1.0, 0.5], [0.1, 0.9, 0.95, 0.5]) == [PRE, GROK, GROK, GROK]
    # once the drop has begun, a checkpoint back within 0.03 of the peak stays anti-grokking
    assert accuracy_phases(steps, [1.0] * 4, [0.1, 0.9, 0.86, 0.88]) == [PRE, GROK, ANTI, ANTI]
    assert accuracy_phases([], [], []) == []


def test_score_run_matches_hand_computed_figures():
    s = score_run("fixture", FIX["steps"], FIX["labels"], FIX["train"], FIX["test"])
    e = FIX["expected"]
    assert s.n == 12 and s.agree == e["agree"] and s.agreement == 0.75
    assert s.recall.keys() == e["recall"].keys()
    assert all(math.isclose(s.recall[k], v) for k, v in e["recall"].items())
    assert math.isclose(s.balanced, e["balanced"])
    assert (s.lead_ckpts, s.lead_steps) == (e["lead_ckpts"], e["lead_steps"])
    assert s.false_alarms == e["false_alarms"]
    assert (s.drop_step, s.first_anti_step) == (e["drop_step"], e["first_anti_step"])
    assert s.confusion == {(PRE, PRE): 5, (GROK, PRE): 1, (GROK, GROK): 2, (ANTI, GROK): 1, (ANTI, ANTI): 2,
                           (GROK, ANTI): 1}


def test_late_warning_has_a_negative_lead_and_pooling_adds_up():
    labels = list(FIX["labels"])
    labels[8] = GROK  # first anti label now at index 9 = the drop: lead 0
    labels[9] = GROK  # ... now at index 11: two checkpoints late
    s = score_run("late", FIX["steps"], labels, FIX["train"], FIX["test"])
    assert (s.lead_ckpts, s.lead_steps) == (-2, 1000 - 5000) and s.false_alarms == 0
    a = score_run("a", FIX["steps"], FIX["labels"], FIX["train"], FIX["test"])
    p = pooled([a, s])
    assert p.n == 24 and p.agree == a.agree + s.agree and p.false_alarms == 1
    assert math.isclose(p.recall[ANTI], (2 + 1) / 6)
