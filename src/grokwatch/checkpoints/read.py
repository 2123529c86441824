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
        out.append(TensorRef(module + ".weight", r.key, r.file, shape, key_b=kb, scale=scale, rank=rank))
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


class TensorReader:
    """Reads the tensors of one checkpoint: each file opened and its header parsed once."""

    def __init__(self) -> None:
        self._torch: tuple[str, dict] | None = None
        self._st: dict[str, tuple[object, dict, int]] = {}

    def _raw(self, file: str, key: str) -> np.ndarray:
        if file.endswith(".safetensors"):
            try:
                if file not in self._st:
                    header, start = safetensors_header(Path(file))
                    self._st[file] = (open(file, "rb"), header, start)
                fh, header, start = self._st[file]
                return read_safetensors(fh, header, start, key)
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(file, f"cannot read {key} ({e.__class__.__name__})") from None
        if self._torch is None or self._torch[0] != file:
            if Path(file).is_dir():
                from grokwatch.checkpoints.dcp_file import read_dcp_state

                self._torch = (file, read_dcp_state(file))
            else:
                self._torch = (file, read_torch_state(file).tensors)
        t = self._torch[1][key]
        return t.detach().float().numpy() if str(t.dtype) == "torch.bfloat16" else t.detach().numpy()

    def read(self, ref: TensorRef) -> np.ndarray:
        if ref.part:
            return np.ascontiguousarray(part_matrix(self._raw(ref.file, ref.key), ref))
        if ref.key_b is None:
            return self._raw(ref.file, ref.key)
        a = self._raw(ref.file, ref.key).astype(np.float64)
        b = self._raw(ref.file, ref.key_b).astype(np.float64)
        return ref.scale * (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1))

    def close(self) -> None:
        for fh, _, _ in self._st.values():
            fh.close()
        self._st.clear()
        self._torch = None

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
