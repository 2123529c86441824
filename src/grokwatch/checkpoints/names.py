"""What a checkpoint is: its files, format and step, and the names of its tensors.

Pure data and name parsing (no numpy, no torch), shared by discovery and reading.
Steps come from metadata first (`STEP_KEYS`), then from the file or folder name
(`STEP_PATTERNS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Checkpoint",
    "TensorRef",
    "clean_name",
    "is_side_file",
    "step_from_meta",
    "step_from_name",
    "step_unit_from_meta",
]

SAFETENSORS = "safetensors"
SHARDED = "sharded"  # an `*.index.json` with a weight_map over safetensors or torch shards
TORCH = "torch"
LIGHTNING = "lightning"
DCP = "dcp"  # torch.distributed.checkpoint folder: `.metadata` + `*.distcp`
KERAS = "keras"
TORCH_SUFFIXES = {".pt", ".pth", ".bin"}
# timm's CheckpointSaver: checkpoint-N.pth.tar, last.pth.tar, model_best.pth.tar
TORCH_LONG_SUFFIXES = (".pth.tar", ".pt.tar")
KERAS_SUFFIXES = (".keras", ".weights.h5")
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
# Optimizer shards and states are not model checkpoints (DeepSpeed ZeRO writes
# `zero_pp_rank_0_mp_rank_00_optim_states.pt`, `bf16_zero_pp_rank_0_..._optim_states.pt`).
SKIP_PATTERNS = [re.compile(p) for p in (r".*optim_states\.pt", r"optimizer(_\d+)?\.(pt|bin|pth)")]
STEP_KEYS = ("step", "global_step", "global_steps", "iter_num", "iteration")  # global_steps: DeepSpeed
EPOCH_KEYS = ("epoch",)  # timm's CheckpointSaver records only the epoch
STEP_PATTERNS = [re.compile(p) for p in (r"checkpoint[-_](\d+)", r"step[_=-]?(\d+)", r"iter[_=-]?(\d+)")]
STRIP_PREFIXES = ("_orig_mod.", "module.", "base_model.model.")


@dataclass
class TensorRef:
    """Where one weight tensor lives; small enough to send to a worker process."""

    layer: str  # display name, wrapper prefixes stripped
    key: str  # key in the file
    file: str
    shape: tuple[int, ...]
    # Several names sharing one storage (tied weights): analysed once, under `layer`.
    aliases: tuple[str, ...] = ()
    # A LoRA update ΔW = scale · B · A: `key` is A's key, `key_b` B's (peft adapters).
    key_b: str | None = None
    scale: float = 1.0
    rank: int = 0  # the LoRA rank r: ΔW has at most r non-zero eigenvalues
    fan_in_fan_out: bool = False  # the adapter's config: its base layer stores W as (in, out)
    # With `--base`: the base weight W of a LoRA layer, analysed as W + ΔW (ΔW transposed to W's layout).
    base_file: str | None = None
    base_key: str | None = None
    base_transposed: bool = False
    # The wrapper key the state dict was found under in a torch file ("model_state", ...).
    source: str | None = None
    # One block of a fused QKV matrix ("q", "k" or "v"; see checkpoints/layers.py): split along
    # `part_axis`, per head when `part_heads` > 0 (GPT-NeoX), contiguously otherwise. With
    # grouped-query attention `part_sizes` gives the unequal (q, k, v) lengths along the axis, and
    # `part_groups` > 0 says the axis repeats [q k v] blocks of those lengths once per key/value
    # head (Falcon's new_decoder_architecture).
    part: str | None = None
    part_axis: int = 0
    part_heads: int = 0
    part_sizes: tuple[int, ...] = ()
    part_groups: int = 0


@dataclass
class Checkpoint:
    path: Path  # the file, index file or checkpoint folder
    rel: str  # name shown to the user (relative to the scanned root)
    format: str
    files: list[Path]  # files that hold tensors
    step: int | None = None
    meta: dict[str, str] = field(default_factory=dict)
    step_unit: str = "step"  # "epoch" where only an epoch is recorded (timm)
    notes: list[str] = field(default_factory=list)  # one line each: tensors skipped and why
    source: str | None = None  # wrapper key of a torch file's state dict ("model_state"), if any

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


def is_side_file(name: str) -> bool:
    """Trainer and optimizer files that hold no model weights (skipped by discovery)."""
    return name in SKIP_NAMES or any(p.fullmatch(name) for p in SKIP_PATTERNS)


def step_from_name(name: str) -> int | None:
    for pat in STEP_PATTERNS:
        hits = pat.findall(name)
        if hits:
            return int(hits[-1])
    return None


def step_unit_from_meta(meta: dict) -> str:
    """ "epoch" when a file's metadata records an epoch and no step (timm), else "step"."""
    if any(meta.get(k) is not None for k in STEP_KEYS):
        return "step"
    return "epoch" if any(meta.get(k) is not None for k in EPOCH_KEYS) else "step"


def step_from_meta(meta: dict) -> int | None:
    """The step recorded in a file's metadata; an epoch only when no step is recorded."""
    for k in STEP_KEYS + EPOCH_KEYS:
        v = meta.get(k)
        if v is None:
            continue
        try:
            return int(float(v)) if not hasattr(v, "item") else int(v.item())
        except (TypeError, ValueError):
            continue
    return None
