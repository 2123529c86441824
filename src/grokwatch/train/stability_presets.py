"""Named run recipes of the numerical-stability comparison (kept in one small table of its own so it
merges with other preset tables: a preset is only a dict of `TrainConfig` field defaults).

`prieto2025`: Prieto et al., "Grokking at the edge of numerical stability" (2025), their repo's
modular-addition MLP run (figure 1): one-hot a and b (2p = 226 inputs), two bias-free hidden
layers of 200, p = 113, 40 % of the pairs for training, full batch, AdamW lr 0.01, weight decay 0,
betas (0.9, 0.99), eps 1e-25 (their defaults), float32, cross-entropy. Add `--loss stablemax` or
`--perp-grad` for the two fixes (their StableMax run uses beta2 0.999; pass `--beta2 0.999`).
"""

from __future__ import annotations

__all__ = ["STABILITY_PRESETS"]

STABILITY_PRESETS: dict[str, dict] = {
    "prieto2025": {
        "task": "modadd",
        "arch": "onehot",
        "p": 113,
        "train_frac": 0.4,
        "width": 200,
        "batch_size": 0,
        "lr": 0.01,
        "wd": 0.0,
        "beta2": 0.99,
        "adam_eps": 1e-25,
        "init_scale": 1.0,
        "loss": "ce",
        "dtype": "float32",
        "steps": 3000,
    },
}
