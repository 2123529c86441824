"""Reading the weight tensors of a discovered checkpoint, whatever its format.

`tensor_refs` lists a checkpoint's floating-point tensors (no data read for
safetensors); `TensorReader` reads them one at a time, each file opened and
its header parsed once, so memory is bounded by the largest tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grokwatch.checkpoints.discover import shard_files
from grokwatch.checkpoints.names import (
    SAFETENSORS,
    SHARDED,
    Checkpoint,
    TensorRef,
    clean_name,
    step_from_meta,
)
from grokwatch.checkpoints.safetensors_file import read_safetensors, safetensors_header, safetensors_refs
from grokwatch.checkpoints.torch_file import read_torch_state
from grokwatch.errors import CheckpointError

__all__ = ["TensorReader", "read_torch_state", "tensor_refs"]


def tensor_refs(ck: Checkpoint) -> list[TensorRef]:
    """Every floating-point tensor of a checkpoint (no data read for safetensors)."""
    if ck.format == SAFETENSORS:
        return safetensors_refs(ck.files[0])
    if ck.format == SHARDED:
        return [r for f in shard_files(ck.files[0]) for r in safetensors_refs(f)]
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
                    header, start = safetensors_header(Path(ref.file))
                    self._st[ref.file] = (open(ref.file, "rb"), header, start)
                fh, header, start = self._st[ref.file]
                return read_safetensors(fh, header, start, ref.key)
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
