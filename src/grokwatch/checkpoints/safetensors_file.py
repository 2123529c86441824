"""safetensors files, read without the safetensors package: header once, one tensor at a time.

The header is validated against the file size (a truncated file is named, not
half-read) and parsed once per file version; tensors are read into numpy from
their byte range, bf16 widened to float32.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from grokwatch.checkpoints.names import TensorRef, clean_name
from grokwatch.errors import CheckpointError

__all__ = ["read_safetensors", "safetensors_header", "safetensors_meta", "safetensors_refs"]


def safetensors_header(path: Path) -> tuple[dict, int]:
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


def safetensors_meta(path: Path) -> dict[str, str]:
    return dict(safetensors_header(path)[0].get("__metadata__") or {})


_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bf16"}
# Integer and boolean tensors (token ids, masks, counters) are not weights: skipped without a word.
_NOT_WEIGHTS = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64"}


def safetensors_refs(path: Path, notes: list[str] | None = None) -> list[TensorRef]:
    """The floating-point tensors of one file; a tensor of a dtype grokwatch cannot read
    (float8, complex, a dtype newer than this reader) gets a line in `notes` instead of vanishing."""
    header, _ = safetensors_header(path)
    refs = []
    skipped: dict[str, list[str]] = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt = v.get("dtype") if isinstance(v, dict) else None
        if dt in _ST_DTYPES:
            refs.append(TensorRef(clean_name(k), k, str(path), tuple(v["shape"])))
        elif dt not in _NOT_WEIGHTS:
            skipped.setdefault(str(dt), []).append(k)
    if notes is not None:
        for dt, keys in sorted(skipped.items()):
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            notes.append(f"{path}: skipped {len(keys)} tensor(s) of unsupported dtype {dt} ({shown})")
    return refs


READ_CHUNK = 16 * 2**20  # bytes read per step when widening to float64: the raw bytes are never held whole


def read_safetensors(fh, header: dict, data_start: int, key: str, wide: bool = False) -> np.ndarray:
    """One tensor as numpy from its byte range of an open file (bf16 widened to float32).

    wide=True returns float64, converted chunk by chunk as it is read: memory is
    the float64 array alone (the values are the same, every dtype here widens exactly).
    """
    info = header[key]
    start, end = info["data_offsets"]
    dt = _ST_DTYPES[info["dtype"]]
    fh.seek(data_start + start)
    if wide:
        return _read_wide(fh, key, end - start, dt).reshape(info["shape"])
    raw = np.empty(end - start, dtype=np.uint8)  # not bytearray: that zero-fills first
    if fh.readinto(raw) != len(raw):
        raise CheckpointError(fh.name, f"truncated while reading {key}")
    return _decode(raw, dt).reshape(info["shape"])


def _decode(raw: np.ndarray, dt) -> np.ndarray:
    if dt == "bf16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    return raw.view(np.dtype(dt).newbyteorder("<"))


def _read_wide(fh, key: str, nbytes: int, dt) -> np.ndarray:
    item = 2 if dt == "bf16" else np.dtype(dt).itemsize
    out = np.empty(nbytes // item, dtype=np.float64)
    step = max(item, READ_CHUNK - READ_CHUNK % item)
    raw = np.empty(min(step, nbytes), dtype=np.uint8)
    done = 0
    while done < nbytes:
        n = min(step, nbytes - done)
        part = raw[:n]
        if fh.readinto(part) != n:
            raise CheckpointError(fh.name, f"truncated while reading {key}")
        out[done // item : (done + n) // item] = _decode(part, dt)
        done += n
    return out
