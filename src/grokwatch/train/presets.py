"""Named recipes for `grokwatch train --preset NAME`: published setups in one word.

A preset fills options the user did not give; an explicit option always wins
(`--preset nanda2023 --p 59` trains Nanda et al.'s model at p = 59). What it set is stored in
the run's config like any option, so resuming compares the values, not the preset's name.

    from grokwatch.train import TrainConfig, train
    from grokwatch.train.presets import preset_config
    cfg = preset_config("nanda2023", steps=20_000)      # == TrainConfig(**PRESETS["nanda2023"], ...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # --help lists the presets: importing this module must stay cheap
    from grokwatch.train.schedule import TrainConfig

__all__ = ["PRESETS", "describe_preset", "preset_config"]

PRESETS: dict[str, dict] = {
    # Power et al. 2022 (arXiv 2201.02177, openai/grok defaults): the defaults of --model transformer.
    "power2022": dict(
        task="modadd",
        model="transformer",
        p=97,
        train_frac=0.5,
        width=128,
        layers=2,
        heads=4,
        d_mlp=512,
        layer_norm=True,
        lr=1e-3,
        wd=1.0,
        beta2=0.98,
        warmup=10,
    ),
    # Nanda et al. 2023 (arXiv 2301.05217): 1 layer, no LayerNorm, full batch, 30 % of pairs, p 113.
    "nanda2023": dict(
        task="modadd",
        model="transformer",
        p=113,
        train_frac=0.3,
        width=128,
        layers=1,
        heads=4,
        d_mlp=512,
        layer_norm=False,
        batch_size=0,
        lr=1e-3,
        wd=1.0,
        beta2=0.98,
        warmup=10,
    ),
    # Prieto et al. 2025 ("Grokking at the edge of numerical stability"), their repo's modular-addition
    # MLP run: one-hot a and b (2p = 226 inputs), two bias-free hidden layers of 200, 40 % of pairs,
    # full batch, AdamW lr 0.01, wd 0, betas (0.9, 0.99), eps 1e-25, float32 cross-entropy. Add
    # `--loss stablemax` or `--perp-grad` for the two fixes (their StableMax run uses --beta2 0.999).
    "prieto2025": dict(
        task="modadd",
        arch="onehot",
        p=113,
        train_frac=0.4,
        width=200,
        batch_size=0,
        lr=0.01,
        wd=0.0,
        beta2=0.99,
        adam_eps=1e-25,
        init_scale=1.0,
        loss="ce",
        dtype="float32",
    ),
}


def preset_config(name: str, **overrides) -> TrainConfig:
    """The preset's options, then `overrides` on top; raises ValueError naming the presets."""
    from grokwatch.train.schedule import TrainConfig

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides, "preset": name})


def describe_preset(name: str) -> str:
    """`--p 97 --train-frac 0.5 ...`: what a preset sets, as options (for --help and the docs)."""
    parts = []
    for key, value in PRESETS[name].items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(parts)
