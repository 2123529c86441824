"""The single-checkpoint rules (threshold, paper): each label, the evidence, what must not flip a label."""

from __future__ import annotations

from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN, label_checkpoint, paper_label
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


def test_paper_rule_ignores_trust_and_traps():
    # the paper reads alpha alone: a weak fit below 2 counts, traps do not
    assert paper_label([rec("fc1", 1.5, n_tail=8), rec("fc2", 3.0)])[0] == ANTI
    assert paper_label([rec("fc1", 3.0, traps=5), rec("fc2", 3.0)])[0] == GROK
    phase, why = paper_label([rec("fc1", 7.0), rec("fc2", 3.0)])
    assert phase == PRE and "fc1 alpha=7.00 > 6 (paper)" in why
    assert paper_label([rec("fc3", 1.0, M=10)])[0] == UNKNOWN
