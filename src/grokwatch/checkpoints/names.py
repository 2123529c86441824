"""What a checkpoint is: its files, format and step, and the names of its tensors.

Pure data and name parsing (no numpy, no torch), shared by discovery and reading.
Steps come from metadata first (`STEP_KEYS`), then from the file or folder name
(`STEP_PATTERNS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Checkpoint", "TensorRef", "clean_name", "step_from_meta", "step_from_name"]

SAFETENSORS = "safetensors"
SHARDED = "sharded"
TORCH = "torch"
LIGHTNING = "lightning"
TORCH_SUFFIXES = {".pt", ".pth", ".bin"}
# Trainer side files that hold no model weights (HF Trainer's and ours).
SKIP_NAMES = {
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "rng_state.pth",
    "training_args.bin",
    "scaler.pt",
    "train_state.pt",
}
STEP_KEYS = ("step", "global_step", "iter_num", "iteration")
STEP_PATTERNS = [re.compile(p) for p in (r"checkpoint-(\d+)", r"step[_=-]?(\d+)", r"iter[_=-]?(\d+)")]
STRIP_PREFIXES = ("_orig_mod.", "module.")


@dataclass
class TensorRef:
    """Where one weight tensor lives; small enough to send to a worker process."""

    layer: str  # display name, wrapper prefixes stripped
    key: str  # key in the file
    file: str
    shape: tuple[int, ...]


@dataclass
class Checkpoint:
    path: Path  # the file, index file or checkpoint folder
    rel: str  # name shown to the user (relative to the scanned root)
    format: str
    files: list[Path]  # files that hold tensors
    step: int | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def sort_key(self) -> tuple:
        return (self.step is None, self.step if self.step is not None else 0, self.rel)


def clean_name(key: str) -> str:
    """Strip torch.compile / DataParallel wrappers: `_orig_mod.module.fc1.weight` -> `fc1.weight`."""
    changed = True
    while changed:
        changed = False
        for p in STRIP_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
        key = key.replace("._orig_mod.", ".")
    return key


def step_from_name(name: str) -> int | None:
    for pat in STEP_PATTERNS:
        hits = pat.findall(name)
        if hits:
            return int(hits[-1])
    return None


def step_from_meta(meta: dict) -> int | None:
    for k in STEP_KEYS:
        v = meta.get(k)
        if v is None:
            continue
        try:
            return int(float(v)) if not hasattr(v, "item") else int(v.item())
        except (TypeError, ValueError):
            continue
    return None
