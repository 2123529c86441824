"""The trend rule on constructed trajectories: exact labels, evidence, causality."""

from __future__ import annotations

import pytest

from grokwatch.phases import ANTI, GROK, PRE, label_records, label_run
from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules, Rule

# onset_shrink 0: these trajectories test the other conditions; test_memorizing_is_not_grokking the norm gate
RULES = PhaseRules(onset_contraction=0.08, onset_shrink=0.0, anti_alpha=3.0, anti_growth=0.1, window=3)


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
    assert reasons[0].startswith("first checkpoint (threshold rule)")
    assert "fc1.weight stable rank 90.0 -> 72.0 (0.097 >= 0.08)" in reasons[3]
    assert "stable rank fall 0.025 < 0.08 (fc1.weight)" in reasons[2]
    assert "fc1.weight median alpha 2.80 < 3, model norm +0.150 in 3 ckpts" in reasons[6]


def test_an_outlying_fit_does_not_flip_the_label():
    cks = [
        ck(1, 90.0, 8.0),
        ck(10, 70.0, 4.0),
        ck(20, 60.0, 4.0, log_norm=3.8),
        ck(30, 55.0, 1.2, log_norm=3.8),
        ck(40, 50.0, 4.1, log_norm=3.8),
    ]
    # one fit at 1.2 among 4.0s: the median stays 4.0 -> grokking throughout; the threshold rule flips
    assert labels(cks) == [PRE, GROK, GROK, GROK, GROK]
    assert labels(cks, PhaseRules(rule=Rule.threshold))[3] == ANTI
    # a weak fit (n_tail < 10) never enters the median
    weak = [
        ck(1, 90.0, 8.0),
        ck(10, 70.0, 4.0),
        ck(20, 60.0, 1.0, n_tail=5, log_norm=3.9),
        ck(30, 60.0, 1.0, n_tail=5, log_norm=3.9),
    ]
    assert labels(weak) == [PRE, GROK, GROK, GROK]
    # nor does an outlier high fit bring back pre-grokking after the onset
    assert labels([ck(1, 90.0, 8.0), ck(10, 70.0, 4.0), ck(20, 69.0, 14.0)]) == [PRE, GROK, GROK]


def test_recovery_and_weight_decay():
    # alpha low while the norm grows -> anti; alpha recovers -> grokking again
    cks = [
        ck(1, 90.0, 8.0),
        ck(10, 60.0, 2.5, log_norm=3.8),
        ck(20, 50.0, 2.5, log_norm=3.8),
        ck(30, 50.0, 4.0, log_norm=3.8),
        ck(40, 50.0, 4.0, log_norm=3.8),
    ]
    assert labels(cks) == [PRE, GROK, ANTI, ANTI, GROK]
    # the same low alpha with a norm that never grows (weight decay): no alarm
    flat = [
        ck(1, 90.0, 8.0, log_norm=3.6),
        ck(10, 60.0, 2.0, log_norm=3.5),
        ck(20, 50.0, 1.8, log_norm=3.45),
        ck(30, 45.0, 1.7, log_norm=3.45),
    ]
    assert labels(flat) == [PRE, GROK, GROK, GROK]


def test_memorizing_is_not_grokking():
    """Stable rank falls while every norm grows (memorizing): pre-grokking until some layer sheds norm."""
    rules = PhaseRules(onset_contraction=0.08, onset_shrink=0.2, anti_alpha=3.0, anti_growth=0.1, window=3)

    def two(step, sr, norm, out_norm):
        out = ck(step, 10.0, 4.0, log_norm=out_norm, layer="fc3.weight", M=10)  # too small to vote
        return ck(step, sr, 8.0 if step == 1 else 4.0, log_norm=norm) + out

    cks = [
        two(1, 65.0, 1.9, 2.0),
        two(10, 52.0, 2.5, 2.4),
        two(100, 50.0, 3.0, 2.6),
        two(200, 48.0, 3.1, 2.45),
        two(300, 45.0, 3.1, 2.35),
    ]
    got = label_run(cks, rules)
    assert [p for p, _ in got] == [PRE, PRE, PRE, PRE, GROK]
    assert "norm fall 0.000 < 0.2 (fc1.weight)" in got[1][1]
    assert "norm fall 0.150 < 0.2 (fc3.weight)" in got[3][1]
    assert "fc3.weight norm 0.250 below its peak" in got[4][1]


def test_traps_small_layers_and_single_checkpoints():
    cks = [ck(1, 90.0, 8.0), ck(10, 70.0, 4.0, traps=2, log_norm=3.8)]
    assert labels(cks) == [PRE, ANTI]
    # traps in a layer whose norm shrinks (weight decay) raise no alarm
    assert labels([ck(1, 90.0, 8.0), ck(10, 70.0, 4.0, traps=4, log_norm=3.4)]) == [PRE, GROK]
    # a layer under min_evals eigenvalues votes with nothing, not even its stable rank
    small = [ck(1, 9.0, 4.0, M=10), ck(10, 2.0, 1.0, M=10, log_norm=4.0)]
    assert [p for p, _ in label_run(small, RULES)][1] == "unknown"
    # one checkpoint: the threshold rule, said so
    ((phase, reason),) = label_run([ck(1, 50.0, 4.0)], RULES)
    assert phase == GROK and reason.startswith("first checkpoint (threshold rule)")


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
        cks.append(
            ck(
                i + 1,
                sr,
                float(rng.uniform(1.5, 9.0)),
                log_norm=norm,
                n_tail=int(rng.integers(5, 40)),
                traps=int(rng.integers(0, 3)),
            )
        )
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


def test_a_layer_whose_norm_fell_and_grows_back_means_anti_grokking():
    rules = PhaseRules(onset_contraction=0.08, onset_shrink=0.2, anti_alpha=0.0, anti_rebound=0.25, window=3)

    def two(step, sr, out_norm):
        return ck(step, sr, 8.0 if step == 1 else 4.0) + ck(
            step, 8.0, 3.0, log_norm=out_norm, layer="fc3.weight", M=10
        )

    # the output layer sheds 2 decades while grokking, then climbs 0.1, 0.2, 0.3 back from its low
    norms = [2.3, 1.5, 0.8, 0.3, 0.4, 0.5, 0.6, 0.5]
    srs = [90.0, 70.0, 60.0, 50.0, 45.0, 40.0, 35.0, 33.0]
    got = label_run([two(10**i, sr, n) for i, (sr, n) in enumerate(zip(srs, norms))], rules)
    assert [p for p, _ in got] == [PRE, GROK, GROK, GROK, GROK, GROK, ANTI, GROK]
    assert "fc3.weight norm up 0.300 >= 0.25 from low (fell 2.000)" in got[6][1]


def _two_layers(step, norm_a, norm_b, alpha_a=2.5):
    """fc1 over-correlated (alpha_a) and fc2 plain (alpha 4), with the given log10 squared norms."""
    return ck(step, 60.0, alpha_a, log_norm=norm_a) + ck(step, 60.0, 4.0, log_norm=norm_b, layer="fc2.weight")


@pytest.mark.parametrize(
    ("norm_b", "model_labels"),
    [
        # fc2 (10x fc1's squared norm) sheds more than fc1 gains: the model's norm falls, no alarm
        ([4.0, 4.0, 3.9, 3.8, 3.7], [PRE, GROK, GROK, GROK, GROK]),
        # fc2 flat: the model's norm grows with fc1's, over-correlated while growing: anti-grokking
        ([4.0, 4.0, 4.0, 4.0, 4.0], [PRE, GROK, ANTI, ANTI, ANTI]),
    ],
)
def test_anti_norm_model_gates_on_the_whole_models_norm(norm_b, model_labels):
    """`anti_norm=model`: a layer that grows while the model as a whole sheds norm (layers trading
    norm at a weight-decay equilibrium) raises no alarm; the layer's own trend (the default) does."""
    norm_a = [3.0, 3.0, 3.05, 3.1, 3.15]
    cks = [ck(1, 90.0, 8.0, log_norm=3.0) + ck(1, 90.0, 8.0, log_norm=4.0, layer="fc2.weight")]
    cks += [_two_layers(s, a, b) for s, a, b in zip((10, 20, 30, 40), norm_a[1:], norm_b[1:], strict=True)]
    layer_rules = PhaseRules(
        onset_contraction=0.08, onset_shrink=0.0, anti_growth=0.0, window=3, anti_norm="layer"
    )
    assert labels(cks, layer_rules) == [PRE, GROK, ANTI, ANTI, ANTI]
    model_rules = PhaseRules(
        onset_contraction=0.08, onset_shrink=0.0, anti_growth=0.0, window=3, anti_norm="model"
    )
    assert labels(cks, model_rules) == model_labels
    if ANTI in model_labels:
        reason = label_run(cks, model_rules)[2][1]
        # squared norms 10^3 + 10^4 -> 10^3.05 + 10^4 over 2 checkpoints: log10(11122/11000) = 0.0048
        assert "fc1.weight median alpha 2.50 < 3, model norm +0.005 in 2 ckpts" in reason
