"""Builders shared by the tests: small seeded checkpoint folders, MNIST-shaped IDX files, CLI calls.

Imported as `from helpers import ...` (pytest's `pythonpath = ["tests"]`).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from typer.testing import CliRunner

from grokwatch.cli import app


def mlp_weights(
    rng: np.random.Generator, heavy: float | None = None, scale: float = 1.0
) -> dict[str, np.ndarray]:
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
        save_file(
            mlp_weights(rng, heavy=[None, 3.0, 1.5][i % 3]),
            str(folder / f"step_{s:08d}.safetensors"),
            metadata=md,
        )
    return folder


def llama_block(folder: Path, d: int = 48, seed: int = 0, shards: int = 2) -> Path:
    """A tiny Llama-shaped block, bf16, sharded with an index (as the hub writes them)."""
    import json

    import torch
    from safetensors.torch import save_file as save_torch

    rng = np.random.default_rng(seed)
    f = int(round(2.6875 * d))
    shapes = {
        **{f"model.layers.0.self_attn.{p}_proj.weight": (d, d) for p in "qkvo"},
        "model.layers.0.mlp.gate_proj.weight": (f, d),
        "model.layers.0.mlp.up_proj.weight": (f, d),
        "model.layers.0.mlp.down_proj.weight": (d, f),
        "model.layers.0.input_layernorm.weight": (d,),
    }
    tensors = {
        k: torch.from_numpy(rng.standard_t(3.0, size=s).astype(np.float32)).to(torch.bfloat16)
        for k, s in shapes.items()
    }
    keys = list(tensors)
    folder.mkdir(parents=True)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in keys[i::shards]}
        save_torch(part, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    return folder


# ---------------------------------------------------------------- fixtures: runs whose phases we control
# Measured with these seeds and shapes (WeightWatcher-default fit, traps on):
#   Gaussian 100x200: alpha ~3-6, no trap; Gaussian*0.05 + 0.02: one trap (the mean);
#   Student-t(1.5) 100x200: alpha < 2 and several traps -> anti-grokking.


def _gauss(rng, shape=(100, 200)):
    return rng.normal(size=shape)


def _mean(rng, shape=(100, 200)):
    return rng.normal(size=shape) * 0.05 + 0.02


def _heavy(rng, shape=(100, 200)):
    return rng.standard_t(1.5, size=shape)


def write_ckpt(folder: Path, step: int, fc1, fc2, acc: tuple[float, float] | None = None) -> None:
    meta = {"step": str(step)}
    if acc is not None:
        meta.update(train_acc=str(acc[0]), test_acc=str(acc[1]))
    tensors = {
        "fc1.weight": fc1.astype(np.float32),
        "fc1.bias": np.zeros(fc1.shape[0], np.float32),
        "fc2.weight": fc2.astype(np.float32),
    }
    save_file(tensors, str(folder / f"step_{step:08d}.safetensors"), metadata=meta)


def make_anti_run(folder: Path) -> Path:
    """6 checkpoints with accuracy: clean spectra, then a trap, then heavy tails (anti-grokking)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    plan = [
        (0, _gauss, (0.10, 0.10)),
        (10, _gauss, (1.0, 0.15)),
        (100, _gauss, (1.0, 0.60)),
        (1000, _mean, (1.0, 0.90)),
        (10000, _mean, (1.0, 0.92)),
        (100000, _heavy, (1.0, 0.80)),
    ]
    for step, kind, acc in plan:
        write_ckpt(
            folder, step, kind(rng), _gauss(rng, (100, 100)) if kind is not _heavy else _heavy(rng), acc
        )
    return folder


def make_trap_run(folder: Path) -> Path:
    """One trap in one layer, no alpha below 2: level 'trap', not anti-grokking."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    write_ckpt(folder, 1, _gauss(rng), _gauss(rng))
    write_ckpt(folder, 2, _mean(rng), _gauss(rng))
    return folder


def make_clean_run(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for step in (1, 2):
        write_ckpt(folder, step, _gauss(rng), _gauss(rng))
    return folder


def invoke(*args: str, env: dict | None = None):
    env = {"GITHUB_ACTIONS": None, "GITHUB_STEP_SUMMARY": None, "CI": "true", **(env or {})}
    return CliRunner().invoke(app, ["report", *map(str, args), "--workers", "1"], env=env)


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}[arr.dtype]
    return bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_mnist(folder: Path, n_train: int = 200, n_test: int = 50, gz: bool = True, seed: int = 0) -> Path:
    """MNIST-shaped IDX files with the names torchvision uses (labels cycle 0..9)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sfx = ".gz" if gz else ""
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{stem}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz
        )
        write_idx(folder / f"{stem}-labels-idx1-ubyte{sfx}", (np.arange(n) % 10).astype(np.uint8), gz)
    return folder


def train_child(out: str, steps: int, extra: dict) -> None:
    """`grokwatch train`'s work in a forkserver child (tests/train/test_faults.py kills it with SIGKILL).

    Module-level so a forkserver that has already imported torch can start it in milliseconds.
    """
    import torch

    from grokwatch.train import TrainConfig, train

    torch.set_num_threads(1)
    train(TrainConfig(steps=steps, **extra), out)
