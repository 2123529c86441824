"""torch distributed checkpoints (`.metadata` + `*.distcp`, written by `torch.distributed.checkpoint.save` and FSDP).

Read with torch's own DCP reader in this one process (no process group), with
two guards so no pickled code runs: the `.metadata` pickle is read by an
unpickler that only resolves DCP's metadata classes, torch dtypes/sizes and
paths, and only floating-point tensor entries are requested (DCP loads
non-tensor "bytes" entries with a full unpickler, so they are never asked for).
Tensors themselves are read by DCP through `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from grokwatch.errors import CheckpointError

__all__ = ["is_dcp_folder", "read_dcp_metadata", "read_dcp_scalars", "read_dcp_state"]

_ALLOWED_MODULES = {
    "torch.distributed.checkpoint.metadata",
    "torch.distributed.checkpoint.filesystem",
    "torch.distributed.checkpoint._extension",
    "torch.distributed.checkpoint.planner",
}
_ALLOWED = {
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "Path"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
}


class _MetadataUnpickler(pickle.Unpickler):
    """Resolves only DCP's metadata dataclasses and enums, torch dtypes/Size/layouts and paths."""

    def find_class(self, module: str, name: str):
        import torch

        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) in _ALLOWED or (module in _ALLOWED_MODULES and not name.startswith("__")):
            obj = super().find_class(module, name)
            if module in _ALLOWED_MODULES and not isinstance(obj, type) and name != "_MEM_FORMAT_ENCODING":
                raise pickle.UnpicklingError(f"{module}.{name} is not a metadata class")
            return obj
        raise pickle.UnpicklingError(f"refusing to import {module}.{name}")


def is_dcp_folder(d: Path) -> bool:
    return d.is_dir() and (d / ".metadata").is_file() and any(d.glob("*.distcp"))


def read_dcp_metadata(d: Path):
    path = d / ".metadata"
    try:
        with open(path, "rb") as fh:
            return _MetadataUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as e:
        raise CheckpointError(str(path), f"unreadable or unsafe DCP metadata ({e})") from None
    except OSError as e:
        raise CheckpointError(str(path), f"cannot open ({e.strerror})") from None


def read_dcp_state(d: str | Path) -> dict[str, object]:
    """Flat {fully qualified name: tensor} of every floating-point tensor of a DCP folder."""
    import warnings

    import torch
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.filesystem import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta, TensorStorageMetadata
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    d = Path(d)
    md = read_dcp_metadata(d)
    keys = {
        k
        for k, v in md.state_dict_metadata.items()
        if isinstance(v, TensorStorageMetadata) and v.properties.dtype.is_floating_point
    }
    if not keys:
        return {}

    class _Reader(FileSystemReader):
        def read_metadata(self, *args, **kwargs):
            if getattr(md, "storage_meta", None) is None:
                md.storage_meta = StorageMeta()
            md.storage_meta.load_id = self.load_id
            return md

    sd: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _load_state_dict(
                sd,
                storage_reader=_Reader(str(d)),
                planner=_EmptyStateDictLoadPlanner(keys=keys),
                no_dist=True,
            )
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - missing or truncated .distcp shards
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(str(d), f"unreadable distributed checkpoint ({first})") from None
    flat: dict[str, object] = {}

    def walk(obj, prefix: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(obj, torch.Tensor):
            flat[prefix] = obj

    walk(sd, "")
    return {k: v for k, v in flat.items() if v.is_floating_point()}


def read_dcp_scalars(d: str | Path, keys: tuple[str, ...]) -> dict[str, object]:
    """Top-level non-tensor entries named in `keys` (a saved `step`), read with `weights_only=True`.

    DCP stores such entries as torch.save'd bytes in a .distcp file; they are read
    here from their byte range (entries with storage transforms are left out).
    Anything that is not a plain int/float/str is ignored.
    """
    import io

    import torch
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    d = Path(d)
    md = read_dcp_metadata(d)
    out: dict[str, object] = {}
    for idx, info in (md.storage_data or {}).items():
        fqn = getattr(idx, "fqn", None)
        if fqn not in keys or not isinstance(md.state_dict_metadata.get(fqn), BytesStorageMetadata):
            continue
        if getattr(info, "transform_descriptors", None):
            continue
        try:
            with open(d / info.relative_path, "rb") as fh:
                fh.seek(info.offset)
                blob = fh.read(info.length)
            v = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a step we cannot read safely is simply not used
            continue
        if isinstance(v, int | float | str) and not isinstance(v, bool):
            out[fqn] = v
    return out
