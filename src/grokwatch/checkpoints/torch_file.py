"""torch and Lightning files: `torch.load(weights_only=True)`, never an unpickler that runs code.

What a file holds is found, not assumed: a bare state dict, or one under a
wrapper key (`state_dict`, `model`, `model_state`, ...), else the largest dict
of tensors in the file. Only one non-tensor type is let through torch's
safe-globals mechanism: `argparse.Namespace`, which timm's CheckpointSaver
stores as `args` (a plain attribute bag; its unpickling runs no code).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.checkpoints.names import EPOCH_KEYS, STEP_KEYS
from grokwatch.errors import CheckpointError

__all__ = ["TorchState", "read_torch_state", "torch_refusal"]

# Wrapper keys seen in the wild, tried in this order before the generic search.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net", "network")


@dataclass
class TorchState:
    """The floating-point tensors of a torch file, its step metadata and where they were found."""

    tensors: dict[str, object]
    meta: dict[str, object] = field(default_factory=dict)
    source: str | None = None  # the wrapper key used ("model_state", "ema.state_dict"), None at top level
    n_empty: int = 0  # 0-element floating tensors (DeepSpeed ZeRO-3 placeholders)


def _safe_globals():
    """The one type allowed beyond torch's own: argparse.Namespace (timm's `args`)."""
    import argparse

    return [argparse.Namespace]


def _load(path: str):
    import pickle

    import torch

    # torch warns about pickle protocols it does not expect; the user cannot act on that, and an
    # unloadable file gets its own one-line error from the caller.
    with torch.serialization.safe_globals(_safe_globals()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(e) and "zip" not in str(e):
                raise
        except pickle.UnpicklingError:
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # torch.save's pre-1.6 format


def _looks_like_torch(path: str) -> bool:
    """A zip archive (torch >= 1.6) or the legacy pickle that starts with torch's magic number."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            return True
        with open(path, "rb") as fh:
            return fh.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
    except OSError:
        return False


def torch_refusal(path: str, error: Exception) -> CheckpointError:
    """The one line for a file torch refused or could not read.

    A weights-only refusal names the classes it would import (sorted, so the
    line is stable) and, for a pickled model, how to fix it; a file that is not
    a torch archive at all is called corrupt, never "unsafe". Torch's own
    multi-sentence messages are summarised, never cut off mid-sentence.
    """
    import torch

    text = str(error)
    if not _looks_like_torch(path):
        return CheckpointError(path, "corrupt or unreadable torch file (not a complete torch.save archive)")
    if "Weights only load failed" in text and "Unsupported operand" not in text:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - legacy format: take the names from the message
            names = re.findall(r"GLOBAL ([\w.]+)", text)
        names = sorted(set(names))
        what = ", ".join(names) if names else "non-tensor objects"
        hint = ""
        if any(n.startswith(("torch.nn.modules.", "__main__.")) for n in names):
            hint = "; a whole model saved with torch.save(model): re-save model.state_dict() instead"
        return CheckpointError(path, f"unsafe pickle, not loaded (would import {what}){hint}")
    m = re.search(r"PytorchStreamReader failed ([^.]*)", text)
    if m:
        return CheckpointError(path, f"corrupt or truncated torch archive ({m.group(1).strip()})")
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0] if text.strip() else ""
    detail = f"{error.__class__.__name__}: {first}" if first else error.__class__.__name__
    return CheckpointError(path, f"corrupt or unreadable torch file ({detail})")


def _tensor_dicts(obj, prefix: str = "", depth: int = 0):
    """(key path, dict) for every dict of tensors up to three levels down."""
    import torch

    if not isinstance(obj, dict) or depth > 3:
        return
    n = sum(isinstance(v, torch.Tensor) and v.is_floating_point() for v in obj.values())
    if n:
        yield prefix or None, obj, n
    for k, v in obj.items():
        if isinstance(v, dict):
            yield from _tensor_dicts(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)


def read_torch_state(path: str | Path) -> TorchState:
    """The state dict of a torch/Lightning/timm file, weights only.

    Never unpickles code: `weights_only=True` is explicit, and on refusal the
    globals the pickle asks for are named in the error.
    """
    import pickle

    import torch

    path = str(path)
    try:
        obj = _load(path)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError, KeyError) as e:
        raise torch_refusal(path, e) from None
    except Exception as e:  # noqa: BLE001 - anything else torch raises on a bad file
        raise torch_refusal(path, e) from None
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"holds a {type(obj).__name__}, not a state dict")
    meta = {
        k: v
        for k, v in obj.items()
        if k in STEP_KEYS + EPOCH_KEYS and isinstance(v, int | float | str) and not isinstance(v, bool)
    }
    source = None
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), dict) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
            obj, source = obj[key], key
            break
    else:
        found = list(_tensor_dicts(obj))
        if found:
            # the largest dict of tensors (by elements), e.g. {'step', 'model_state', 'optimizer_state'}
            def size(item):
                return sum(v.numel() for v in item[1].values() if isinstance(v, torch.Tensor))

            source, obj, _ = max(found, key=size)
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    n_empty = sum(1 for v in tensors.values() if v.numel() == 0)
    return TorchState(tensors, meta, source, n_empty)
