"""Finding checkpoints in a folder: every layout, its files and its step, sorted by step.

Layouts: `*.safetensors`; sharded models (`*.safetensors.index.json` or
`pytorch_model.bin.index.json`, one checkpoint over all shards); torch
`*.pt/*.pth/*.bin`; timm's `*.pth.tar`; Lightning `*.ckpt`; HF Trainer
`checkpoint-N/` folders and the final model beside a top-level
`trainer_state.json`; peft adapters (`adapter_model.*` + `adapter_config.json`);
torch distributed checkpoints (a folder with `.metadata` and `*.distcp`).
Trainer and optimizer side files that hold no model weights are skipped by
name (`optimizer.pt`, DeepSpeed's `*_optim_states.pt`, ...). Anything named
like a checkpoint that cannot be one (a dangling symlink, a folder called
`x.safetensors`, a Keras file) is returned as an error line, never dropped.

Steps of torch files live inside the file (nanoGPT's `iter_num`) and are only
known once it is read, so callers sort again after reading (`scan_folder` does).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from grokwatch.checkpoints.dcp_file import is_dcp_folder
from grokwatch.checkpoints.names import (
    DCP,
    KERAS_SUFFIXES,
    LIGHTNING,
    SAFETENSORS,
    SHARDED,
    TORCH,
    TORCH_LONG_SUFFIXES,
    TORCH_SUFFIXES,
    Checkpoint,
    is_side_file,
    step_from_meta,
    step_from_name,
)
from grokwatch.checkpoints.safetensors_file import safetensors_meta
from grokwatch.errors import CheckpointError

__all__ = ["CHECKPOINT_PATTERNS", "discover", "shard_files"]

# What the "no checkpoints found" message lists.
CHECKPOINT_PATTERNS = (
    "*.safetensors, *.safetensors.index.json, *.bin.index.json, *.pt, *.pth, *.bin, *.pth.tar, *.ckpt, "
    "checkpoint-N/, peft adapter_model.*, torch.distributed.checkpoint folders (.metadata + *.distcp)"
)
_INDEX_SUFFIXES = (".safetensors.index.json", ".bin.index.json", ".pt.index.json", ".pth.index.json")
# Model files an HF folder (checkpoint-N/ or a final output_dir) holds, in order of preference.
_HF_MODEL_FILES = ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin")


def _format_of(name: str) -> str | None:
    """The format a file name says, or None when it is not a checkpoint name."""
    if name.endswith(".safetensors"):
        return SAFETENSORS
    if name.endswith(TORCH_LONG_SUFFIXES) or Path(name).suffix in TORCH_SUFFIXES:
        return TORCH
    if name.endswith(".ckpt"):
        return LIGHTNING
    if name.endswith(_INDEX_SUFFIXES):
        return SHARDED
    return None


def _trainer_step(folder: Path) -> int | None:
    """`global_step` from an HF Trainer's trainer_state.json in `folder`."""
    state = folder / "trainer_state.json"
    try:
        s = json.loads(state.read_text()).get("global_step")
        return int(s) if s is not None else None
    except (ValueError, OSError, TypeError, AttributeError):
        return None


def _hf_folder(d: Path) -> Checkpoint | None:
    """An HF Trainer `checkpoint-N/` folder holding one model (full, sharded or a peft adapter)."""
    files: list[Path]
    index = sorted(p for p in d.iterdir() if p.name.endswith(_INDEX_SUFFIXES))
    if index:
        files, fmt = [index[0]], SHARDED
    else:
        model = next((d / n for n in _HF_MODEL_FILES if (d / n).is_file()), None)
        if model is None:
            return None
        files, fmt = [model], SAFETENSORS if model.suffix == ".safetensors" else TORCH
    ck = Checkpoint(path=d, rel="", format=fmt, files=files, step=step_from_name(d.name))
    s = _trainer_step(d)
    if s is not None:
        ck.step = s
    return ck


def shard_files(index: Path) -> list[Path]:
    try:
        wm = json.loads(index.read_text())["weight_map"]
        names = sorted(set(wm.values()))
    except (ValueError, KeyError, OSError, TypeError, AttributeError) as e:
        raise CheckpointError(str(index), f"bad sharded index ({e.__class__.__name__})") from None
    files = [index.parent / f for f in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(str(index), f"shard(s) missing: {', '.join(missing)}")
    return files


def _odd(p: Path) -> CheckpointError | None:
    """One line for a path named like a checkpoint that cannot be read as one."""
    name = p.name
    if p.is_symlink() and not p.exists():
        if _format_of(name) or name.endswith(KERAS_SUFFIXES):
            try:
                target = str(p.readlink())
            except OSError:
                target = "?"
            return CheckpointError(str(p), f"dangling symlink (points to {target}, which does not exist)")
        return None
    if p.is_dir() and _format_of(name) and not is_dcp_folder(p):
        return CheckpointError(str(p), "is a directory, not a checkpoint file")
    if p.is_file() and name.endswith(KERAS_SUFFIXES):
        return CheckpointError(
            str(p), "Keras file: recognised, not supported (export the weights to safetensors or torch)"
        )
    return None


def discover(root: str | Path) -> tuple[list[Checkpoint], list[CheckpointError]]:
    """All checkpoints under `root` (a folder or a single file), sorted by step.

    Returns the checkpoints and the files that could not even be opened for
    their metadata; the caller reports those and goes on with the rest.

        checkpoints, bad = discover("runs/mnist")
        [(c.step, c.rel) for c in checkpoints]
    """
    root = Path(root)
    found: list[Checkpoint] = []
    bad: list[CheckpointError] = []
    if not root.is_dir():
        paths, base = [root], root.parent
    else:
        paths = sorted(
            p for p in root.rglob("*") if not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        base = root
        paths.insert(0, root)  # the folder itself may be a checkpoint-N/ or DCP folder
    claimed: set[Path] = set()

    def claim(d: Path) -> None:
        claimed.add(d)
        claimed.update(d.rglob("*"))

    for d in paths:
        if not d.is_dir() or d in claimed:
            continue
        if is_dcp_folder(d):
            found.append(Checkpoint(path=d, rel="", format=DCP, files=[d]))
            claim(d)
        elif re.fullmatch(r"checkpoint-\d+", d.name):
            ck = _hf_folder(d)
            if ck:
                found.append(ck)
                claim(d)
    for p in paths:
        if p in claimed:
            continue
        err = _odd(p)
        if err is not None:
            bad.append(err)
            continue
        if p.is_file() and p.name.endswith(_INDEX_SUFFIXES):
            try:
                shards = shard_files(p)
            except CheckpointError as e:
                bad.append(e)
                claimed.update(p.parent / n for n in _shard_names(p))
                continue
            claimed.update(shards)
            found.append(Checkpoint(path=p, rel="", format=SHARDED, files=[p]))
    for p in paths:
        if p in claimed or not p.is_file() or is_side_file(p.name) or p.name.endswith(_INDEX_SUFFIXES):
            continue
        fmt = _format_of(p.name)
        if fmt:
            found.append(Checkpoint(path=p, rel="", format=fmt, files=[p]))
    good: list[Checkpoint] = []
    for ck in found:
        ck.rel = str(ck.path.relative_to(base)) if ck.path != base else ck.path.name
        try:
            _read_meta(ck)
        except CheckpointError as e:
            bad.append(e)
            continue
        if ck.step is None and ck.path.is_file():
            # an HF Trainer's final model: the step is in the top-level trainer_state.json
            ck.step = _trainer_step(ck.path.parent)
        if ck.step is None:
            ck.step = step_from_name(ck.rel)
        good.append(ck)
    good.sort(key=lambda c: c.sort_key)
    return good, bad


def _shard_names(index: Path) -> list[str]:
    try:
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except Exception:  # noqa: BLE001 - only used to avoid scanning the shards of a bad index twice
        return []


def _read_meta(ck: Checkpoint) -> None:
    """Fill step and str metadata (accuracy, config) from the file itself."""
    f = None
    if ck.format == SAFETENSORS:
        f = ck.files[0]
    elif ck.format == SHARDED:
        first = shard_files(ck.files[0])[0]
        f = first if first.name.endswith(".safetensors") else None
    if f is not None:
        meta = safetensors_meta(f)
        ck.meta.update(meta)
        s = step_from_meta(meta)
        if s is not None and ck.step is None:
            ck.step = s
    # torch files: metadata is read with the tensors (one load), see read_torch_state.
