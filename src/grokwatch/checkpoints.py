"""Finding checkpoints in a folder and reading their weight tensors safely.

Formats: `*.safetensors` (lazily, one tensor at a time), sharded safetensors
(`*.safetensors.index.json`), torch `*.pt/*.pth/*.bin` and Lightning `*.ckpt`
(always `torch.load(weights_only=True)`: a pickle that would import code is
refused and its globals named, never executed), and HF Trainer `checkpoint-N/`
folders. Steps come from metadata first, then from the name.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grokwatch.errors import CheckpointError

SAFETENSORS = "safetensors"
SHARDED = "sharded"
TORCH = "torch"
LIGHTNING = "lightning"
TORCH_SUFFIXES = {".pt", ".pth", ".bin"}
# Trainer side files that hold no model weights (HF Trainer's and ours).
SKIP_NAMES = {"optimizer.pt", "optimizer.bin", "scheduler.pt", "rng_state.pth", "training_args.bin",
              "scaler.pt", "train_state.pt"}
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
                key, changed = key[len(p):], True
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


# ---------------------------------------------------------------- discovery

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


def _shards(index: Path) -> list[Path]:
    try:
        wm = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, OSError) as e:
        raise CheckpointError(str(index), f"bad sharded index ({e.__class__.__name__})") from None
    return [index.parent / f for f in sorted(set(wm.values()))]


def discover(root: str | Path) -> tuple[list[Checkpoint], list[CheckpointError]]:
    """All checkpoints under `root` (a folder or a single file), sorted by step.

    Returns the checkpoints and the files that could not even be opened for
    their metadata; the caller reports those and goes on with the rest.
    """
    root = Path(root)
    found: list[Checkpoint] = []
    bad: list[CheckpointError] = []
    if root.is_file():
        paths, base = [root], root.parent
    else:
        paths, base = sorted(p for p in root.rglob("*") if not any(
            part.startswith(".") for part in p.relative_to(root).parts)), root
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
                shards = _shards(p)
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
        f = ck.files[0] if ck.format == SAFETENSORS else _shards(ck.files[0])[0]
        meta = _safetensors_meta(f)
        ck.meta.update(meta)
        s = step_from_meta(meta)
        if s is not None and ck.step is None:
            ck.step = s
    # torch files: metadata is read with the tensors (one load), see read_torch_state.


# ---------------------------------------------------------------- safetensors

def _safetensors_header(path: Path) -> tuple[dict, int]:
    """(header JSON, byte offset where tensor data starts), validated against the file size.

    Parsed once per file version: discovery, tensor listing and reading all ask for it.
    The returned dict is shared; callers must not modify it.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise CheckpointError(str(path), f"cannot open ({e.strerror})") from None
    return _parse_header(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _parse_header(path: str, size: int, mtime_ns: int) -> tuple[dict, int]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise CheckpointError(str(path), "truncated safetensors file (no header)")
            n = int.from_bytes(raw, "little")
            if n <= 0 or n > 100_000_000:
                raise CheckpointError(str(path), "not a safetensors file (bad header length)")
            head = fh.read(n)
            if len(head) < n:
                raise CheckpointError(str(path), "truncated safetensors header")
            fh.seek(0, 2)
            size = fh.tell()
        header = json.loads(head)
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except CheckpointError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(str(path), f"unreadable safetensors header ({e.__class__.__name__})") from None
    if 8 + n + end > size:
        raise CheckpointError(str(path), f"truncated: data ends at byte {8 + n + end}, file has {size}")
    return header, 8 + n


def _safetensors_meta(path: Path) -> dict[str, str]:
    return dict(_safetensors_header(path)[0].get("__metadata__") or {})


_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bf16"}


def _safetensors_refs(path: Path) -> list[TensorRef]:
    header, _ = _safetensors_header(path)
    refs = []
    for k, v in header.items():
        if k == "__metadata__" or v.get("dtype") not in _ST_DTYPES:
            continue
        refs.append(TensorRef(clean_name(k), k, str(path), tuple(v["shape"])))
    return refs


def _read_safetensors(fh, header: dict, data_start: int, key: str) -> np.ndarray:
    """One tensor as numpy from its byte range of an open file (bf16 widened to float32)."""
    info = header[key]
    start, end = info["data_offsets"]
    dt = _ST_DTYPES[info["dtype"]]
    fh.seek(data_start + start)
    raw = np.empty(end - start, dtype=np.uint8)  # not bytearray: that zero-fills first
    if fh.readinto(raw) != len(raw):
        raise CheckpointError(fh.name, f"truncated while reading {key}")
    if dt == "bf16":
        arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        arr = raw.view(np.dtype(dt).newbyteorder("<"))
    return arr.reshape(info["shape"])


# ---------------------------------------------------------------- torch

def read_torch_state(path: str | Path) -> tuple[dict[str, object], dict[str, object]]:
    """(tensors by key, scalar metadata) from a torch/Lightning file, weights only.

    Never unpickles code: `weights_only=True` is explicit, and on refusal the
    globals the pickle asks for are named in the error.
    """
    import pickle

    import torch

    path = str(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(e) and "zip" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - the file is unsafe either way
            names = []
        what = ", ".join(names) if names else "non-tensor objects"
        raise CheckpointError(path, f"unsafe pickle, not loaded (would import {what})") from None
    except Exception as e:  # noqa: BLE001 - corrupt zip, truncated file, wrong format...
        msg = str(e).splitlines()[0][:160] if str(e) else e.__class__.__name__
        raise CheckpointError(path, f"unreadable torch file ({msg})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"holds a {type(obj).__name__}, not a state dict")
    meta = {k: v for k, v in obj.items() if k in STEP_KEYS and not isinstance(v, dict | torch.Tensor)}
    for key in ("state_dict", "model_state_dict", "model", "module"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return tensors, meta


# ---------------------------------------------------------------- public reading API

def tensor_refs(ck: Checkpoint) -> list[TensorRef]:
    """Every floating-point tensor of a checkpoint (no data read for safetensors)."""
    if ck.format == SAFETENSORS:
        return _safetensors_refs(ck.files[0])
    if ck.format == SHARDED:
        return [r for f in _shards(ck.files[0]) for r in _safetensors_refs(f)]
    tensors, meta = read_torch_state(ck.files[0])
    if ck.step is None:
        ck.step = step_from_meta(meta)
    return [TensorRef(clean_name(k), k, str(ck.files[0]), tuple(v.shape)) for k, v in tensors.items()]


class TensorReader:
    """Reads the tensors of one checkpoint: each file opened and its header parsed once."""

    def __init__(self) -> None:
        self._torch: tuple[str, dict] | None = None
        self._st: dict[str, tuple[object, dict, int]] = {}

    def read(self, ref: TensorRef) -> np.ndarray:
        if ref.file.endswith(".safetensors"):
            try:
                if ref.file not in self._st:
                    header, start = _safetensors_header(Path(ref.file))
                    self._st[ref.file] = (open(ref.file, "rb"), header, start)
                fh, header, start = self._st[ref.file]
                return _read_safetensors(fh, header, start, ref.key)
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(ref.file, f"cannot read {ref.key} ({e.__class__.__name__})") from None
        if self._torch is None or self._torch[0] != ref.file:
            self._torch = (ref.file, read_torch_state(ref.file)[0])
        t = self._torch[1][ref.key]
        return t.detach().float().numpy() if str(t.dtype) == "torch.bfloat16" else t.detach().numpy()

    def close(self) -> None:
        for fh, _, _ in self._st.values():
            fh.close()
        self._st.clear()
        self._torch = None

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
