"""Shared fixtures: checkpoint folders generated on the fly (seeded, small)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file


def mlp_weights(rng: np.random.Generator, heavy: float | None = None, scale: float = 1.0) -> dict[str, np.ndarray]:
    """A small 3-layer MLP's weights; `heavy` = Student-t df for fc2 (heavy tail -> small alpha)."""
    fc2 = rng.standard_t(heavy, size=(100, 100)) if heavy else rng.normal(size=(100, 100))
    return {
        "fc1.weight": (scale * rng.normal(size=(100, 200))).astype(np.float32),
        "fc1.bias": np.zeros(100, np.float32),
        "fc2.weight": (scale * fc2).astype(np.float32),
        "fc3.weight": (scale * rng.normal(size=(10, 100))).astype(np.float32),
    }


def write_run(folder: Path, steps=(10, 100, 1000), seed: int = 0, meta: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, s in enumerate(steps):
        md = {"step": str(s), **(meta or {})}
        save_file(mlp_weights(rng, heavy=[None, 3.0, 1.5][i % 3]), str(folder / f"step_{s:08d}.safetensors"), metadata=md)
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")
