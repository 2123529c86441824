"""--corrupt (exact count, seeded, always wrong, clean/corrupt accuracies) and the competing measures
(hand-computed on tiny models, stored in metrics.jsonl and checkpoint metadata)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from grokwatch.measures import abs_weight_entropy, l2_norm, total_l2
from grokwatch.train import TrainConfig, train
from grokwatch.train.data import corrupt_labels, load_dataset
from grokwatch.train.measures import activation_sparsity, circuit_kl, model_measures, norms

SMALL = dict(task="modadd", p=23, width=64, embed_dim=32)


def test_corrupt_labels_exact():
    y = np.arange(200) % 13
    new, idx = corrupt_labels(y, 13, 0.15, seed=4)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30 and list(idx) == sorted(idx)
    changed = np.flatnonzero(new != y)
    assert np.array_equal(changed, idx)  # exactly the recorded ones changed, and every one to a wrong label
    assert new.min() >= 0 and new.max() < 13
    again, idx2 = corrupt_labels(y, 13, 0.15, seed=4)
    assert np.array_equal(again, new) and np.array_equal(idx, idx2)
    other, idx3 = corrupt_labels(y, 13, 0.15, seed=5)
    assert not np.array_equal(idx3, idx)
    assert len(corrupt_labels(y, 13, 0.0, seed=4)[1]) == 0
    assert len(corrupt_labels(y, 13, 0.333, seed=4)[1]) == round(0.333 * 200)


def test_corrupt_dataset_and_metrics(tmp_path):
    cfg = TrainConfig(steps=40, checkpoints=2, corrupt=0.2, **SMALL)
    data = load_dataset(cfg.resolved())
    clean = load_dataset(TrainConfig(**SMALL).resolved())
    n = len(data.y_train)
    assert np.array_equal(data.x_train, clean.x_train) and np.array_equal(data.y_train_true, clean.y_train)
    assert np.array_equal(np.flatnonzero(data.y_train != clean.y_train), data.corrupt_idx)
    assert len(data.corrupt_idx) == round(0.2 * n) and data.fingerprint != clean.fingerprint
    res = train(cfg, tmp_path / "c")
    last = json.loads((tmp_path / "c" / "metrics.jsonl").read_text().splitlines()[-1])
    k = len(data.corrupt_idx)
    # train accuracy (against the labels trained on) is the count-weighted mean of the two parts
    assert last["train_acc"] == pytest.approx(
        ((n - k) * last["train_acc_clean"] + k * last["train_acc_corrupt"]) / n
    )
    assert 0 <= last["train_acc_corrupt_true"] <= 1
    assert last["train_acc_corrupt"] + last["train_acc_corrupt_true"] <= 1 + 1e-12  # one answer per example
    with safe_open(res.checkpoints[-1], framework="pt") as f:
        meta = f.metadata()
    info = json.loads(meta["corrupt"])
    assert info["count"] == k and info["fraction"] == 0.2 and info["indices"] == data.corrupt_idx.tolist()
    assert float(meta["train_acc_clean"]) == last["train_acc_clean"]
    with pytest.raises(ValueError, match="corrupt"):
        TrainConfig(task="mnist", corrupt=0.1).resolved()


def test_weight_measures_hand_computed():
    w = np.array([[0.5, -0.25], [0.0, 1.0]], dtype=np.float32)
    # -(0.5 ln 0.5 + 0.25 ln 0.25 + 0 + 1 ln 1) = 0.5 ln 2 + 0.5 ln 2 = ln 2
    # float32 weights: logs in float32 (a float32 ulp, ~6e-8 relative), sums in float64
    assert abs_weight_entropy(w) == pytest.approx(math.log(2), rel=1e-7)
    assert abs_weight_entropy(w.astype(np.float64)) == pytest.approx(math.log(2), abs=1e-15)
    assert l2_norm(np.array([[3.0, 4.0]])) == 5.0 and total_l2([5.0, 12.0]) == 13.0
    assert abs_weight_entropy(np.zeros((3, 3))) == 0.0


def _tiny() -> nn.Module:
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(2, 2)
            self.fc2 = nn.Linear(2, 2, bias=False)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    m = Tiny().double()
    with torch.no_grad():
        m.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        m.fc1.bias.copy_(torch.tensor([0.0, -1.0]))
        m.fc2.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
    return m


def test_activation_sparsity_hand_computed():
    m = _tiny()
    x = torch.tensor([[0.5, 1.0], [3.0, 0.0]], dtype=torch.float64)
    # fc1: [0.5, 1.0] and [3.0, -1.0] -> relu [0.5, 1.0], [3.0, 0.0]: below 1 are 0.5 and 0.0
    assert activation_sparsity(m, x) == 0.5
    assert activation_sparsity(m, x, 0.0, inclusive=True) == 0.25
    assert activation_sparsity(nn.Sequential(nn.Linear(2, 2)), x) is None


def test_circuit_kl_hand_computed():
    m = _tiny()
    x = torch.tensor([[0.5, 1.0], [3.0, 0.0]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)  # the masks circuit_kl draws: one per 2-D parameter, in order
    k1, k2 = (
        (torch.rand(2, 2, generator=gen) >= 0.5).double(),
        (torch.rand(2, 2, generator=gen) >= 0.5).double(),
    )
    w1, b1, w2 = m.fc1.weight.detach(), m.fc1.bias.detach(), m.fc2.weight.detach()
    want = 0.0
    for row in x.numpy():
        p = np.maximum(w1.numpy() @ row + b1.numpy(), 0) @ w2.numpy().T
        q = np.maximum((w1 * k1).numpy() @ row + b1.numpy(), 0) @ (w2 * k2).numpy().T
        lp, lq = p - np.log(np.exp(p).sum()), q - np.log(np.exp(q).sum())
        want += float(np.sum(np.exp(lp) * (lp - lq)))
    assert circuit_kl(m, x, seed=7) == pytest.approx(want / 2, abs=1e-12)
    assert circuit_kl(m, x, seed=7, drop=0.0) == 0.0
    assert torch.equal(m.fc1.weight.detach(), w1)  # the model itself is not pruned


def test_norms_and_model_measures():
    m = _tiny()
    n = norms(m)
    assert n["l2_norm.fc1.weight"] == pytest.approx(math.sqrt(5)) and n["l2_norm.fc1.bias"] == 1.0
    assert n["l2_norm"] == pytest.approx(math.sqrt(5 + 1 + 15))
    before = torch.get_rng_state()
    out = model_measures(m, torch.tensor([[0.5, 1.0]], dtype=torch.float64), seed=0)
    assert torch.equal(torch.get_rng_state(), before)  # measures never move the training RNG
    assert out["abs_weight_entropy"] == pytest.approx(-2 * math.log(2))  # fc1: -(1 ln 1 + 2 ln 2)
    assert {"act_sparsity", "act_inactive", "circuit_kl", "l2_norm"} <= set(out)


def test_train_stores_measures(tmp_path):
    res = train(TrainConfig(steps=6, checkpoints=2, **SMALL), tmp_path / "m")
    lines = [json.loads(x) for x in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    with safe_open(res.checkpoints[-1], framework="pt") as f:
        meta = f.metadata()
        w = f.get_tensor("embed.weight").numpy()
    for key in (
        "act_sparsity",
        "act_inactive",
        "abs_weight_entropy",
        "circuit_kl",
        "l2_norm",
        "l2_norm.fc1.weight",
    ):
        assert all(key in x for x in lines) and float(meta[key]) == lines[-1][key], key
    assert lines[-1]["abs_weight_entropy"] == pytest.approx(
        abs_weight_entropy(w), rel=1e-12
    )  # embed: the first matrix
    assert json.loads(meta["measures"]) == {
        "act_sparsity_threshold": 1.0,
        "circuit_drop": 0.5,
        "circuit_seed": 0,
    }
