"""Phase rules: each label, the evidence, and what must not flip a label."""

from __future__ import annotations

from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN, accuracy_phases, label_checkpoint
from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules


def rec(layer, alpha, M=200, n_tail=30, traps=None, error=None):
    return LayerRecord(
        checkpoint="c",
        step=1,
        layer=layer,
        shape=[M, 784],
        N=784,
        M=M,
        alpha=alpha,
        n_tail=n_tail,
        weak_fit=n_tail < 10,
        n_traps=traps,
        error=error,
    )


def test_labels_and_reasons():
    assert label_checkpoint([rec("fc1", 3.5), rec("fc2", 2.5)]) == (
        GROK,
        "all trusted layers 2 <= alpha <= 6",
    )
    phase, why = label_checkpoint([rec("fc1", 8.1), rec("fc2", 3.0)])
    assert phase == PRE and "fc1 alpha=8.10 > 6" in why
    phase, why = label_checkpoint([rec("fc1", 4.0), rec("fc2", 1.7)])
    assert phase == ANTI and "fc2 alpha=1.70 < 2" in why
    phase, why = label_checkpoint([rec("fc1", 4.0, traps=3), rec("fc2", 3.0, traps=1)])
    assert phase == ANTI and why == "fc1 3 traps >= 2"


def test_weak_fits_small_layers_and_single_traps_do_not_flip():
    # a weak fit (n_tail < 10) with alpha < 2 is not evidence
    assert label_checkpoint([rec("fc1", 1.5, n_tail=8), rec("fc2", 3.0)])[0] == GROK
    # a 10-eigenvalue output layer votes neither with alpha nor with traps
    assert label_checkpoint([rec("fc1", 3.0), rec("fc3", 1.2, M=10, traps=4)])[0] == GROK
    # one trap is below the default trap_min
    assert label_checkpoint([rec("fc1", 3.0, traps=1)])[0] == GROK
    assert label_checkpoint([rec("fc1", 3.0, traps=1)], PhaseRules(trap_min=1))[0] == ANTI
    assert label_checkpoint([rec("fc1", 1.5, n_tail=5)])[0] == UNKNOWN
    assert label_checkpoint([rec("fc1", None, error="NaN")])[0] == UNKNOWN


def test_pre_rule_all_and_thresholds():
    layers = [rec("fc1", 8.0), rec("fc2", 5.5)]
    assert label_checkpoint(layers)[0] == PRE
    assert label_checkpoint(layers, PhaseRules(pre_rule="all"))[0] == GROK
    assert label_checkpoint(layers, PhaseRules(pre_rule="all", alpha_high=5))[0] == PRE
    assert label_checkpoint([rec("fc1", 2.5)], PhaseRules(alpha_low=3))[0] == ANTI


def test_accuracy_phases():
    steps = [1, 10, 100, 1000, 10000, 100000]
    train = [0.3, 1.0, 1.0, 1.0, 1.0, 1.0]
    test = [0.1, 0.12, 0.5, 0.9, 0.88, 0.8]
    assert accuracy_phases(steps, train, test) == [PRE, PRE, GROK, GROK, GROK, ANTI]
