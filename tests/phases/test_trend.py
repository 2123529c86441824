"""The trend rule on constructed trajectories: exact labels, evidence, causality."""

from __future__ import annotations

import pytest

from grokwatch.phases import ANTI, GROK, PRE, label_records, label_run
from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules, Rule

RULES = PhaseRules(onset_contraction=0.08, anti_alpha=3.0, anti_growth=0.1, window=3)


def ck(step, sr, alpha, log_norm=3.6, n_tail=30, traps=None, layer="fc1.weight", M=200):
    return [
        LayerRecord(
            checkpoint=f"step_{step}",
            step=step,
            layer=layer,
            shape=[M, 784],
            N=784,
            M=M,
            alpha=alpha,
            n_tail=n_tail,
            weak_fit=n_tail < 10,
            stable_rank=sr,
            log_norm=log_norm,
            n_traps=traps,
        )
    ]


def labels(cks, rules=RULES):
    return [p for p, _ in label_run(cks, rules)]


def test_plateau_fall_collapse():
    # stable rank 90 (plateau) -> falls (onset at 90/72 = 0.097 decades) -> alpha sinks while the norm grows
    cks = [
        ck(1, 90.0, 8.0),
        ck(10, 89.5, 7.5),
        ck(100, 85.0, 6.5),  # 0.025 decades: still pre
        ck(1000, 72.0, 5.0),  # 0.097 >= 0.08: onset
        ck(2000, 50.0, 4.0, log_norm=3.65),
        ck(3000, 30.0, 2.8, log_norm=3.70),  # median(5.0, 4.0, 2.8) = 4.0: not yet
        ck(4000, 20.0, 2.6, log_norm=3.75),  # median(4.0, 2.8, 2.6) = 2.8 < 3, norm +0.15: anti
        ck(5000, 15.0, 2.4, log_norm=3.80),
    ]
    assert labels(cks) == [PRE, PRE, PRE, GROK, GROK, GROK, ANTI, ANTI]
    reasons = [r for _, r in label_run(cks, RULES)]
    assert reasons[0].startswith("first checkpoint, no history yet (threshold rule)")
    assert "fc1.weight stable rank 90.0 -> 72.0 (0.097 decades >= 0.08)" in reasons[3]
    assert (
        "fc1.weight median alpha 2.80 < 3 of the last 3 fits, norm +0.150 decades >= 0.1 over the last 3 checkpoints"
        in reasons[6]
    )


def test_an_outlying_fit_does_not_flip_the_label():
    cks = [ck(1, 90.0, 8.0), ck(10, 70.0, 4.0), ck(20, 60.0, 4.0, log_norm=3.8), ck(30, 55.0, 1.2, log_norm=3.8),
           ck(40, 50.0, 4.1, log_norm=3.8)]
    # one fit at 1.2 among 4.0s: the median stays 4.0 -> grokking throughout; the threshold rule flips
    assert labels(cks) == [PRE, GROK, GROK, GROK, GROK]
    assert labels(cks, PhaseRules(rule=Rule.threshold))[3] == ANTI
    # a weak fit (n_tail < 10) never enters the median
    weak = [ck(1, 90.0, 8.0), ck(10, 70.0, 4.0), ck(20, 60.0, 1.0, n_tail=5, log_norm=3.9),
            ck(30, 60.0, 1.0, n_tail=5, log_norm=3.9)]
    assert labels(weak) == [PRE, GROK, GROK, GROK]
    # nor does an outlier high fit bring back pre-grokking after the onset
    assert labels([ck(1, 90.0, 8.0), ck(10, 70.0, 4.0), ck(20, 69.0, 14.0)]) == [PRE, GROK, GROK]


def test_recovery_and_weight_decay():
    # alpha low while the norm grows -> anti; alpha recovers -> grokking again
    cks = [ck(1, 90.0, 8.0), ck(10, 60.0, 2.5, log_norm=3.8), ck(20, 50.0, 2.5, log_norm=3.8),
           ck(30, 50.0, 4.0, log_norm=3.8), ck(40, 50.0, 4.0, log_norm=3.8)]
    assert labels(cks) == [PRE, GROK, ANTI, ANTI, GROK]
    # the same low alpha with a norm that never grows (weight decay): no alarm
    flat = [ck(1, 90.0, 8.0, log_norm=3.6), ck(10, 60.0, 2.0, log_norm=3.5), ck(20, 50.0, 1.8, log_norm=3.45),
            ck(30, 45.0, 1.7, log_norm=3.45)]
    assert labels(flat) == [PRE, GROK, GROK, GROK]


def test_traps_small_layers_and_single_checkpoints():
    cks = [ck(1, 90.0, 8.0), ck(10, 70.0, 4.0, traps=2)]
    assert labels(cks) == [PRE, ANTI]
    # a layer under min_evals eigenvalues votes with nothing, not even its stable rank
    small = [ck(1, 9.0, 4.0, M=10), ck(10, 2.0, 1.0, M=10, log_norm=4.0)]
    assert [p for p, _ in label_run(small, RULES)][1] == "unknown"
    # one checkpoint: the threshold rule, said so
    (phase, reason), = label_run([ck(1, 50.0, 4.0)], RULES)
    assert phase == GROK and reason.startswith("first checkpoint, no history yet")


@pytest.mark.parametrize("rule", list(Rule))
def test_labels_of_a_prefix_never_change(rule):
    """Causality: adding later checkpoints leaves every earlier label and reason as it was."""
    import numpy as np

    rng = np.random.default_rng(0)
    cks = []
    sr, norm = 90.0, 3.6
    for i in range(40):
        sr *= rng.uniform(0.9, 1.0)
        norm += rng.uniform(-0.01, 0.03)
        cks.append(ck(i + 1, sr, float(rng.uniform(1.5, 9.0)), log_norm=norm, n_tail=int(rng.integers(5, 40)),
                      traps=int(rng.integers(0, 3))))
    rules = PhaseRules(rule=rule)
    full = label_run(cks, rules)
    for n in range(1, len(cks)):
        assert label_run(cks[:n], rules) == full[:n]


def test_label_records_orders_by_step_and_sets_every_record():
    cks = [ck(100, 60.0, 4.0), ck(1, 90.0, 8.0), ck(10, 89.0, 7.0)]
    records = [r for c in cks for r in c]
    label_records(records, RULES)
    by_step = {r.step: r.phase for r in records}
    assert by_step == {1: PRE, 10: PRE, 100: GROK}
