"""Checkpoints on disk: finding them, reading their tensors safely, caching results, writing atomically.

names.py             Checkpoint / TensorRef records, step and layer-name parsing (no numpy)
discover.py          every checkpoint layout under a folder, sorted by step
safetensors_file.py  safetensors headers and tensors, one at a time
torch_file.py        torch / Lightning files through weights_only=True (never runs pickled code)
read.py              tensor_refs and TensorReader over every format
cache.py             the SQLite cache of per-checkpoint results
atomic.py            temp file + fsync + rename, for everything grokwatch writes
"""

from grokwatch.checkpoints.discover import discover, shard_files
from grokwatch.checkpoints.names import Checkpoint, TensorRef, clean_name, step_from_meta, step_from_name
from grokwatch.checkpoints.read import TensorReader, read_torch_state, tensor_refs

__all__ = [
    "Checkpoint",
    "TensorReader",
    "TensorRef",
    "clean_name",
    "discover",
    "read_torch_state",
    "shard_files",
    "step_from_meta",
    "step_from_name",
    "tensor_refs",
]
