"""Finding checkpoints in a folder: every layout, its files and its step, sorted by step.

Formats: `*.safetensors`, sharded safetensors (`*.safetensors.index.json`),
torch `*.pt/*.pth/*.bin`, Lightning `*.ckpt`, and HF Trainer `checkpoint-N/`
folders. Trainer side files that hold no model weights are skipped by name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from grokwatch.checkpoints.names import (
    LIGHTNING,
    SAFETENSORS,
    SHARDED,
    SKIP_NAMES,
    TORCH,
    TORCH_SUFFIXES,
    Checkpoint,
    step_from_meta,
    step_from_name,
)
from grokwatch.checkpoints.safetensors_file import safetensors_meta
from grokwatch.errors import CheckpointError

__all__ = ["discover", "shard_files"]


def _hf_folder(d: Path) -> Checkpoint | None:
    """An HF Trainer `checkpoint-N/` folder holding one model."""
    files: list[Path]
    index = sorted(d.glob("*.safetensors.index.json"))
    if index:
        files, fmt = [index[0]], SHARDED
    elif (d / "model.safetensors").exists():
        files, fmt = [d / "model.safetensors"], SAFETENSORS
    elif (d / "pytorch_model.bin").exists():
        files, fmt = [d / "pytorch_model.bin"], TORCH
    else:
        return None
    ck = Checkpoint(path=d, rel="", format=fmt, files=files, step=step_from_name(d.name))
    state = d / "trainer_state.json"
    if state.exists():
        try:
            s = json.loads(state.read_text()).get("global_step")
            if s is not None:
                ck.step = int(s)
        except (ValueError, OSError):
            pass
    return ck


def shard_files(index: Path) -> list[Path]:
    try:
        wm = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, OSError) as e:
        raise CheckpointError(str(index), f"bad sharded index ({e.__class__.__name__})") from None
    return [index.parent / f for f in sorted(set(wm.values()))]


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
    if root.is_file():
        paths, base = [root], root.parent
    else:
        paths, base = (
            sorted(
                p
                for p in root.rglob("*")
                if not any(part.startswith(".") for part in p.relative_to(root).parts)
            ),
            root,
        )
    claimed: set[Path] = set()
    for d in (p for p in paths if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)):
        ck = _hf_folder(d)
        if ck:
            found.append(ck)
            claimed.update(q for q in d.rglob("*"))
    for p in paths:
        if p in claimed or not p.is_file():
            continue
        name = p.name
        if name.endswith(".safetensors.index.json"):
            try:
                shards = shard_files(p)
            except CheckpointError as e:
                bad.append(e)
                continue
            claimed.update(shards)
            found.append(Checkpoint(path=p, rel="", format=SHARDED, files=[p]))
    for p in paths:
        if p in claimed or not p.is_file() or p.name in SKIP_NAMES:
            continue
        if p.suffix == ".safetensors":
            found.append(Checkpoint(path=p, rel="", format=SAFETENSORS, files=[p]))
        elif p.suffix in TORCH_SUFFIXES:
            found.append(Checkpoint(path=p, rel="", format=TORCH, files=[p]))
        elif p.suffix == ".ckpt":
            found.append(Checkpoint(path=p, rel="", format=LIGHTNING, files=[p]))
    good: list[Checkpoint] = []
    for ck in found:
        ck.rel = str(ck.path.relative_to(base)) if ck.path != base else ck.path.name
        try:
            _read_meta(ck)
        except CheckpointError as e:
            bad.append(e)
            continue
        if ck.step is None:
            ck.step = step_from_name(ck.rel)
        good.append(ck)
    good.sort(key=lambda c: c.sort_key)
    return good, bad


def _read_meta(ck: Checkpoint) -> None:
    """Fill step and str metadata (accuracy, config) from the file itself."""
    if ck.format in (SAFETENSORS, SHARDED):
        f = ck.files[0] if ck.format == SAFETENSORS else shard_files(ck.files[0])[0]
        meta = safetensors_meta(f)
        ck.meta.update(meta)
        s = step_from_meta(meta)
        if s is not None and ck.step is None:
            ck.step = s
    # torch files: metadata is read with the tensors (one load), see read_torch_state.
