"""Competing measures in scan records and in the report: values from the weights, metadata carried
through, Spearman ρ against hand-computed values, the figure and the summary line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from grokwatch.measures import abs_weight_entropy
from grokwatch.report.measures import measure_series, measures_html, spearman, tracking, tracking_text
from grokwatch.report.model import build_report, facts
from grokwatch.scan import scan_folder
from grokwatch.settings import Settings
from grokwatch.train import TrainConfig, train


def test_spearman_hand_computed():
    # d = [0, 1, 1, 0]: 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # ties share their average rank: x ranks [1.5, 1.5, 3] against [1, 2, 3] -> 1.5 / sqrt(1.5 * 2)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3))
    assert spearman([5, 5, 5], [1, 2, 3]) is None and spearman([1], [2]) is None
    assert spearman(np.exp([1, 2, 3, 4.0]), [1, 3, 2, 4]) == pytest.approx(
        0.8
    )  # rank-based: monotone maps agree


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("m") / "run"
    train(TrainConfig(task="modadd", p=23, width=64, embed_dim=32, steps=60, checkpoints=8, corrupt=0.1), out)
    return out


def test_scan_records_carry_measures(run):
    result = scan_folder(run, Settings(traps=False, weight_entropy=True))
    last = max(result.records, key=lambda r: r.step)
    w = load_file(run / last.checkpoint)[last.layer]
    assert last.l2_norm == pytest.approx(float(np.linalg.norm(w.astype(np.float64))), rel=1e-12)
    assert last.abs_weight_entropy == pytest.approx(abs_weight_entropy(w), rel=1e-12)
    tm = last.extra["train_metrics"]
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("act_sparsity", "circuit_kl", "l2_norm", "train_acc_clean", "train_acc_corrupt"):
        assert tm[key] == line[key], key
    assert "l2_norm" in last.to_dict() and "abs_weight_entropy" in last.to_dict()


def test_report_measures(run):
    rep = build_report(scan_folder(run, Settings(traps=False, weight_entropy=True)))
    series = measure_series(rep)
    assert {"L2 norm (total)", "|w| entropy embed.weight", "circuit KL (50 % dropped)"} <= set(series)
    assert any(k.startswith("α ") for k in series)
    tr = {t.measure: t for t in tracking(rep)}
    test = [v.test_acc for v in rep.checkpoints]
    l2 = series["L2 norm (total)"]
    assert tr["L2 norm (total)"].n == len(rep.checkpoints)
    assert tr["L2 norm (total)"].rho == spearman(l2, test)
    assert dict(facts(rep))["ρ with test acc"] == tracking_text(rep) and "L2" in tracking_text(rep)
    html = measures_html(rep)
    assert html.count("<tr>") == len(tr) + 1 and "<svg" in html and "Spearman" in html
