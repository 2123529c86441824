"""`--base MODEL`: analyse a LoRA adapter's layers as the merged weight W + ΔW.

An adapter alone shows only the update ΔW = scale · B · A (rank r, at most r
non-zero eigenvalues). What the fine-tuned model runs with is W + ΔW, so with
the base model given, each adapted layer is matched to the base tensor of the
same name and the sum is analysed, as peft's `merge_and_unload()` would build it.

Matching: the adapter's layer name (wrapper prefixes stripped) equals the base
tensor's name, or one ends with the other at a dot (`model.layers.0.q_proj.weight`
against `layers.0.q_proj.weight`, as `save_pretrained` of a bare and a head model
differ). Orientation: GPT-2-style Conv1D layers store W as (in, out) while ΔW is
(out, in); peft then merges ΔWᵀ (`fan_in_fan_out`). ΔW is transposed when its
shape only fits that way, or, for square layers, when the adapter says
`fan_in_fan_out` or the base is a GPT-2 model (whose c_attn/c_fc/c_proj are all
Conv1D; peft sets `fan_in_fan_out` for them at run time without saving it).
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path

from grokwatch.checkpoints.names import TensorRef
from grokwatch.errors import GrokwatchError

__all__ = ["BaseModel", "BaseModelError", "attach_base", "fingerprint", "load_base"]

CONV1D_MODEL_TYPES = ("gpt2",)  # transformers models whose adapted Linear-like layers are Conv1D


class BaseModelError(GrokwatchError):
    """`--base` does not name exactly one readable model checkpoint (a usage error, exit 2)."""


@dataclasses.dataclass(frozen=True)
class BaseModel:
    """The base model's weight tensors by name, and whether its layers are Conv1D."""

    path: str
    refs: dict[str, TensorRef]
    conv1d: bool

    def find(self, layer: str) -> TensorRef | None:
        """The base tensor for an adapter layer name: exact, else the one unique dot-suffix match."""
        if layer in self.refs:
            return self.refs[layer]
        hits = [r for n, r in self.refs.items() if n.endswith("." + layer) or layer.endswith("." + n)]
        return hits[0] if len(hits) == 1 else None


def fingerprint(path: str | Path) -> list[list]:
    """(name, size, mtime_ns) of every file of the base: part of the cache key with `--base`."""
    path = Path(path)
    if not path.exists():
        return []
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def load_base(path: str | Path) -> BaseModel:
    """Read the base model's tensor names and shapes (no weights); raises BaseModelError."""
    path = Path(path)
    if not path.exists():
        raise BaseModelError(f"--base {path}: no such file or folder")
    return _load(str(path), json.dumps(fingerprint(path)))


@lru_cache(maxsize=4)  # a worker analyses many adapter checkpoints against one base: read its header once
def _load(path: str, identity: str) -> BaseModel:
    from grokwatch.checkpoints.discover import discover
    from grokwatch.checkpoints.read import tensor_refs

    found, bad = discover(path)
    if bad:
        raise BaseModelError(f"--base {bad[0]}")
    if len(found) != 1:
        what = "no model checkpoint" if not found else f"{len(found)} checkpoints ({found[0].rel}, ...)"
        raise BaseModelError(f"--base {path}: expected one model checkpoint, found {what}")
    ck = found[0]
    try:
        refs = {r.layer: r for r in tensor_refs(ck) if r.key_b is None}
    except GrokwatchError as e:
        raise BaseModelError(f"--base {e}") from None
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    return BaseModel(path, refs, model_type in CONV1D_MODEL_TYPES)


def attach_base(refs: list[TensorRef], base: BaseModel) -> tuple[list[TensorRef], list[str]]:
    """Give each LoRA ref its base tensor; returns the refs and one line per layer left as ΔW alone."""
    out, notes = [], []
    for r in refs:
        if r.key_b is None:
            out.append(r)
            continue
        b = base.find(r.layer)
        if b is None:
            notes.append(f"{r.file}: {r.layer}: no tensor of that name in --base {base.path}; analysed as ΔW")
            out.append(r)
            continue
        rows, cols = b.shape[0], int(_prod(b.shape[1:]))
        if (rows, cols) == r.shape and (rows != cols or not (r.fan_in_fan_out or base.conv1d)):
            transpose = False
        elif (cols, rows) == r.shape:
            transpose = True
        else:
            notes.append(
                f"{r.file}: {r.layer}: base tensor is {'x'.join(map(str, b.shape))}, the update "
                f"{'x'.join(map(str, r.shape))}; analysed as ΔW"
            )
            out.append(r)
            continue
        out.append(
            dataclasses.replace(
                r, shape=(rows, cols), base_file=b.file, base_key=b.key, base_transposed=transpose
            )
        )
    return out, notes


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= x
    return n
