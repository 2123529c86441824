"""Which device computes eigenvalues: `--device auto|cpu|cuda` resolved once per scan.

Why a cheap probe first: importing torch costs ~2 s, and `auto` is the default, so
a scan of safetensors files on a machine without an NVIDIA driver must decide
"cpu" without importing it. Only where a driver is present (and torch installed)
is torch asked whether CUDA works.

    resolve_device("auto")   # None on a CPU-only machine: the numpy pool; "cuda" with a GPU
    resolve_device("cuda")   # DeviceError on a CPU-only machine (exit 2 in the CLI)
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

from grokwatch.errors import DeviceError
from grokwatch.settings import Device

__all__ = ["cuda_possible", "resolve_device"]


def cuda_possible() -> bool:
    """Could CUDA work here? Answered from files and variables, without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


@functools.lru_cache(maxsize=8)
def _cuda_status() -> str | None:
    """None when torch has a working CUDA device, else why not (one line)."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install torch)"
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return f"this torch ({torch.__version__}) is built without CUDA"
        return "torch finds no CUDA device (driver missing or CUDA_VISIBLE_DEVICES empty)"
    return None


def resolve_device(device: str | Device) -> str | None:
    """The torch device to eigensolve on ("cuda"), or None for the numpy pool on the CPU.

    Raises DeviceError (one line) for `cuda` where CUDA is not available, and
    ValueError for a name that is not a Device.
    """
    try:
        device = Device(device)
    except ValueError:
        raise ValueError(f"device={device!r} is not one of: {', '.join(d.value for d in Device)}") from None
    if device == Device.cpu:
        return None
    if device == Device.auto:
        return "cuda" if cuda_possible() and _cuda_status() is None else None
    why = _cuda_status()
    if why:
        raise DeviceError(f"--device cuda: {why}; use --device cpu")
    return "cuda"
