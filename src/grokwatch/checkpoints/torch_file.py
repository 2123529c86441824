"""torch and Lightning files: `torch.load(weights_only=True)`, never an unpickler that runs code."""

from __future__ import annotations

from pathlib import Path

from grokwatch.checkpoints.names import STEP_KEYS
from grokwatch.errors import CheckpointError


def read_torch_state(path: str | Path) -> tuple[dict[str, object], dict[str, object]]:
    """(tensors by key, scalar metadata) from a torch/Lightning file, weights only.

    Never unpickles code: `weights_only=True` is explicit, and on refusal the
    globals the pickle asks for are named in the error.
    """
    import pickle
    import warnings

    import torch

    path = str(path)
    try:
        # torch warns about pickle protocols it does not expect; the user cannot act on that,
        # and an unloadable file gets its own one-line error below.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
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
