"""Reading the weight tensors of a discovered checkpoint, whatever its format.

`tensor_refs` lists a checkpoint's floating-point tensors (no data read for
safetensors); `TensorReader` reads them one at a time, each file opened and
its header parsed once, so memory is bounded by the largest tensor.

Three things are decided here rather than per layer:
- tied weights (names sharing one storage in a torch file) become one ref with
  `aliases`, so a shared matrix is analysed once;
- a peft LoRA adapter's `lora_A`/`lora_B` pairs become one ref for the update
  ΔW = scale · B · A (scale = lora_alpha / r, or / √r with rsLoRA), named after
  the base layer, as WeightWatcher's peft option analyses them;
- tensors that are skipped for a reason the user should know (unknown dtype,
  DeepSpeed ZeRO-3 placeholders) are listed in `Checkpoint.notes`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from grokwatch.checkpoints.discover import shard_files
from grokwatch.checkpoints.layers import part_matrix
from grokwatch.checkpoints.names import (
    DCP,
    EPOCH_KEYS,
    SAFETENSORS,
    SHARDED,
    STEP_KEYS,
    Checkpoint,
    TensorRef,
    clean_name,
    step_from_meta,
    step_unit_from_meta,
)
from grokwatch.checkpoints.safetensors_file import read_safetensors, safetensors_header, safetensors_refs
from grokwatch.checkpoints.torch_file import read_torch_state
from grokwatch.errors import CheckpointError

__all__ = ["TensorReader", "read_torch_state", "tensor_refs"]

ZERO3_HINT = (
    "DeepSpeed ZeRO-3 partitioned checkpoint: {n} parameter(s) are 0-element placeholders; "
    "consolidate it with DeepSpeed's zero_to_fp32.py (saved beside it) and scan that output"
)
_LORA = re.compile(r"^(?P<base>.+)\.lora_(?P<emb>embedding_)?A(?P<rest>(\.[^.]+)?\.weight|)$")


def _torch_refs(ck: Checkpoint, file: Path) -> list[TensorRef]:
    state = read_torch_state(file)
    s = step_from_meta(state.meta)  # metadata first: a file's own step beats its name
    if s is not None:
        ck.step, ck.step_unit = s, step_unit_from_meta(state.meta)
    ck.source = state.source
    if state.n_empty:
        ck.notes.append(f"{file}: " + ZERO3_HINT.format(n=state.n_empty))
    groups: dict[tuple, list[str]] = {}
    for k, v in state.tensors.items():
        if v.numel() == 0:
            continue
        st = v.untyped_storage()
        groups.setdefault((st.data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride())), []).append(
            k
        )
    refs = []
    for keys in groups.values():
        k = keys[0]
        refs.append(
            TensorRef(
                clean_name(k),
                k,
                str(file),
                tuple(state.tensors[k].shape),
                aliases=tuple(clean_name(a) for a in keys[1:]),
                source=state.source,
            )
        )
    return refs


def _file_refs(ck: Checkpoint, file: Path) -> list[TensorRef]:
    if file.name.endswith(".safetensors"):
        return safetensors_refs(file, ck.notes)
    return _torch_refs(ck, file)


def _adapter_config(ck: Checkpoint) -> dict | None:
    """peft's adapter_config.json beside an `adapter_model.*` file, if this is an adapter."""
    f = ck.files[0]
    folder = f if f.is_dir() else f.parent
    if not (f.is_dir() or f.name.startswith("adapter_model")):
        return None
    cfg = folder / "adapter_config.json"
    try:
        return json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None


def _lora_scale(cfg: dict, module: str, r: int) -> float:
    """lora_alpha / r (or / √r with rsLoRA), honouring peft's per-module alpha_pattern."""
    alpha = cfg.get("lora_alpha", r)
    for pat, a in (cfg.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pat})$", module):
            alpha = a
            break
    return float(alpha) / (math.sqrt(r) if cfg.get("use_rslora") else r)


def _pair_lora(ck: Checkpoint, refs: list[TensorRef], cfg: dict | None) -> list[TensorRef]:
    """Replace each lora_A/lora_B pair by one ΔW = scale·B·A ref named after the base layer."""
    by_key = {r.key: r for r in refs}
    used: set[str] = set()
    out: list[TensorRef] = []
    for r in refs:
        m = _LORA.match(r.key)
        if not m:
            continue
        kb = r.key.replace(f".lora_{m['emb'] or ''}A", f".lora_{m['emb'] or ''}B", 1)
        b = by_key.get(kb)
        if b is None:
            continue
        rank = r.shape[0]  # lora_A is (r, in...) and lora_embedding_A (r, num_embeddings)
        base = m["base"]
        module = clean_name(base)
        scale = _lora_scale(cfg, module, rank) if cfg else 1.0
        shape = (b.shape[0], int(np.prod(r.shape[1:])))
        fan = bool(cfg.get("fan_in_fan_out")) if cfg else False
        out.append(
            TensorRef(
                module + ".weight", r.key, r.file, shape, key_b=kb, scale=scale, rank=rank, fan_in_fan_out=fan
            )
        )
        used.update((r.key, kb))
    if out and cfg is None:
        ck.notes.append(f"{ck.path}: LoRA tensors without adapter_config.json: ΔW = B·A, unscaled")
    return out + [r for r in refs if r.key not in used]


def tensor_refs(ck: Checkpoint) -> list[TensorRef]:
    """Every floating-point tensor of a checkpoint (no data read for safetensors)."""
    ck.notes.clear()
    if ck.format == SAFETENSORS:
        refs = safetensors_refs(ck.files[0], ck.notes)
    elif ck.format == SHARDED:
        refs = [r for f in shard_files(ck.files[0]) for r in _file_refs(ck, f)]
    elif ck.format == DCP:
        from grokwatch.checkpoints.dcp_file import read_dcp_scalars, read_dcp_state

        meta = read_dcp_scalars(ck.files[0], STEP_KEYS + EPOCH_KEYS)
        s = step_from_meta(meta)  # a saved `step` beats the folder name
        if s is not None:
            ck.step, ck.step_unit = s, step_unit_from_meta(meta)

        refs = [
            TensorRef(clean_name(k), k, str(ck.files[0]), tuple(v.shape))
            for k, v in read_dcp_state(ck.files[0]).items()
        ]
    else:
        refs = _torch_refs(ck, ck.files[0])
    if any(".lora_" in r.key for r in refs):
        refs = _pair_lora(ck, refs, _adapter_config(ck))
    return refs


WIDEN_BYTES = 16 * 2**20  # source bytes converted per step by `_widen`


def _mapped_from(addr: int, file: str) -> bool:
    """Whether `addr` lies in a mapping of `file` (Linux /proc/self/maps): only then may its pages
    be dropped; anonymous memory (a legacy, non-mmap torch.load) would read back as zeros."""
    import os

    try:
        real = os.path.realpath(file)
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split(maxsplit=5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if lo <= addr < hi:
                    return len(parts) == 6 and parts[5].strip() == real
    except (OSError, ValueError):
        pass
    return False


def _widen(t, file: str = "") -> np.ndarray:
    """A memory-mapped torch tensor as float64, converted block by block, each block's file pages
    dropped from memory once converted (Linux madvise), so the peak is the float64 array alone.

    Why: pages of a file mapping that were read stay resident, and count in RSS, until the
    mapping goes; for a 7B embedding that is 0.26 GB on top of its 1.05 GB float64 copy.
    """
    out = np.empty(tuple(t.shape), dtype=np.float64)
    if t.dim() == 0 or t.numel() == 0 or not t.is_contiguous():
        out[...] = t.double().numpy()
        return out
    flat_t, flat_o = t.reshape(-1), out.reshape(-1)
    step = max(1, WIDEN_BYTES // t.element_size())
    drop = bool(file) and _mapped_from(t.data_ptr(), file)
    for i in range(0, flat_t.numel(), step):
        part = flat_t[i : i + step]
        flat_o[i : i + step] = part.double().numpy()
        if drop:
            _drop_pages(part.data_ptr(), part.numel() * part.element_size())
    return out


def _drop_pages(addr: int, length: int) -> None:
    """madvise(MADV_DONTNEED) on the whole pages inside [addr, addr+length): pages of a file
    mapping that was only read are re-read from the file if touched again; no-op off Linux."""
    import sys

    if sys.platform != "linux" or length <= 0:
        return
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    start = (addr + page - 1) // page * page
    end = (addr + length) // page * page
    if end > start:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # 4 = MADV_DONTNEED


class TensorReader:
    """Reads the tensors of one checkpoint: each file opened and its header parsed once."""

    def __init__(self) -> None:
        # torch files whose tensors are loaded: at most two (an adapter and its --base), so
        # alternating between them never reloads a whole file per layer
        self._torch: dict[str, dict] = {}
        self._st: dict[str, tuple[object, dict, int]] = {}

    def _raw(self, file: str, key: str, wide: bool = False) -> np.ndarray:
        if file.endswith(".safetensors"):
            try:
                if file not in self._st:
                    header, start = safetensors_header(Path(file))
                    self._st[file] = (open(file, "rb"), header, start)
                fh, header, start = self._st[file]
                return read_safetensors(fh, header, start, key, wide)
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(file, f"cannot read {key} ({e.__class__.__name__})") from None
        if file not in self._torch:
            if len(self._torch) >= 2:
                self._torch.pop(next(iter(self._torch)))
            if Path(file).is_dir():
                from grokwatch.checkpoints.dcp_file import read_dcp_state

                self._torch[file] = read_dcp_state(file)
            else:
                self._torch[file] = read_torch_state(file).tensors
        t = self._torch[file][key].detach()
        if wide:  # a large tensor: straight to float64 (exact for every float dtype), then unmapped
            self._torch.pop(file)  # the file's mapping goes with the last tensor: its pages leave RSS
            return _widen(t, "" if Path(file).is_dir() else file)
        return t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()

    def read(self, ref: TensorRef, wide: bool = False) -> np.ndarray:
        """The tensor as numpy (bf16 as float32); `wide` for float64, read without a float32 copy."""
        if ref.part:  # one of Q, K, V of a fused matrix (--split-qkv)
            return np.ascontiguousarray(part_matrix(self._raw(ref.file, ref.key, wide), ref))
        if ref.key_b is None:
            return self._raw(ref.file, ref.key, wide)
        a = self._raw(ref.file, ref.key).astype(np.float64)
        b = self._raw(ref.file, ref.key_b).astype(np.float64)
        delta = ref.scale * (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1))
        if ref.base_key is None:
            return delta
        w = self._raw(ref.base_file, ref.base_key).astype(np.float64)
        w = w.reshape(w.shape[0], -1)
        return w + (delta.T if ref.base_transposed else delta)

    def close(self) -> None:
        for fh, _, _ in self._st.values():
            fh.close()
        self._st.clear()
        self._torch.clear()

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
