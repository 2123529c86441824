"""Per-layer work: when checkpoints are few or large, the pool hands out layers, not checkpoints.

Why: the pool's unit used to be a checkpoint, so one large checkpoint (an LLM's
~224 matrices) ran on one core whatever `-j` said, and its progress bar moved
once at the end. Here the parent lists each checkpoint's layers (for safetensors
from the header alone), workers read and eigensolve one tensor at a time, and
the parent rebuilds each `CheckpointResult` in file order, so records are the
same, bit for bit and in the same order, as `analyze_checkpoints` gives: both
run `layer_matrix_values` and `fit_values` on the same tensor under the same
one-thread BLAS cap.

    from grokwatch.split import analyze_split
    for j, res in analyze_split(checkpoints, Settings(), workers=2):
        ...   # res is checkpoints[j]'s CheckpointResult, as soon as its last layer is done
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.analyze import (
    CheckpointResult,
    analysed_refs,
    fit_values,
    layer_matrix_values,
    new_record,
    set_fields,
    why_nothing,
)
from grokwatch.checkpoints import Checkpoint, TensorReader, TensorRef
from grokwatch.checkpoints.names import SHARDED
from grokwatch.errors import CheckpointError, GrokwatchError
from grokwatch.pool import run
from grokwatch.settings import Settings

__all__ = [
    "FAST_FLOPS",
    "LARGE_BYTES",
    "ON_DEMAND_FLOPS",
    "SPLIT_BELOW",
    "analyze_refs",
    "analyze_split",
    "layer_flops",
    "should_split",
]

SPLIT_BELOW = 4  # fewer checkpoints than this many per process: hand out layers so every core has work
LARGE_BYTES = 64 * 2**20  # a checkpoint this big takes seconds: split it (progress per layer, balance)
# A float64 rate no single core reaches (AVX-512, two FMA units, ~3.5 GHz ≈ 110 GFLOP/s peak dgemm;
# eigvalsh runs far below peak): flops / FAST_FLOPS is a lower bound on the seconds of work.
FAST_FLOPS = 1.2e11
ON_DEMAND_FLOPS = 1e9  # layers this big on average (>= ~0.02 s each) go to workers one at a time


def layer_flops(shape: tuple[int, ...]) -> float:
    """Rough float64 operations of one layer: Gram N·M² plus tridiagonal reduction ~4/3·M³, per slice."""
    a, b = int(shape[0]), int(shape[1])
    n, m = max(a, b), min(a, b)
    slices = 1
    for k in shape[2:]:
        slices *= int(k)
    return slices * (n * m * m + 4.0 / 3.0 * m**3)


def _file_bytes(ck: Checkpoint) -> int:
    """Bytes on disk of a checkpoint (all shards of an index); 0 when a file cannot be stat'ed."""
    from grokwatch.checkpoints.discover import shard_files

    try:
        files = shard_files(ck.files[0]) if ck.format == SHARDED else list(ck.files)
        total = 0
        for f in files:
            f = Path(f)
            if f.is_dir():
                total += sum(p.stat().st_size for p in f.rglob("*") if p.is_file())
            else:
                total += os.stat(f).st_size
        return total
    except (OSError, CheckpointError):
        return 0


def should_split(cks: list[Checkpoint], workers: int) -> bool:
    """Split by layer when there are too few checkpoints to keep `workers` processes busy, or any is large."""
    if not cks:
        return False
    if workers > 1 and len(cks) < SPLIT_BELOW * workers:
        return True
    return any(_file_bytes(ck) >= LARGE_BYTES for ck in cks)


def analyze_refs(refs: list[TensorRef], settings: Settings) -> list[tuple[str, object]]:
    """The pool's work function: ("ok", fields) per layer, or ("bad", line) for an unreadable file.

    Module-level so spawn workers unpickle it by name; one reader per call, so a
    chunk of layers from one file opens it and parses its header once.
    """
    out: list[tuple[str, object]] = []
    with TensorReader() as reader:
        for r in refs:
            try:
                vals, evals = layer_matrix_values(reader, r, settings)
            except GrokwatchError as e:
                out.append(("bad", str(e)))
                continue
            if evals is not None:
                vals = {**vals, **fit_values(evals, settings)}
            del evals
            out.append(("ok", vals))
    return out


@dataclass
class _Pending:
    """One checkpoint being assembled from its layers' results."""

    result: CheckpointResult
    left: int
    bad: dict[int, str] = field(default_factory=dict)  # layer index -> the file's error line


def analyze_split(
    cks: list[Checkpoint],
    settings: Settings,
    workers: int,
    progress: Callable[[int], Callable[[], None]] | None = None,
    start_s: float | None = None,
) -> Iterator[tuple[int, CheckpointResult]]:
    """Yield (index into cks, CheckpointResult) as each checkpoint's last layer finishes.

    Layers are queued checkpoint by checkpoint (so results, and the cache, fill in
    as the scan goes), the most expensive first within each (the last layers
    handed out are the short ones, so no core waits long at the end).
    `progress(n_layers)` returns a callable ticked once per layer.
    """
    tasks: list[tuple[int, int, TensorRef]] = []  # (checkpoint, layer index, ref)
    pending: dict[int, _Pending] = {}
    ready: list[tuple[int, CheckpointResult]] = []
    for j, ck in enumerate(cks):
        try:
            all_refs, refs = analysed_refs(ck, settings)
        except GrokwatchError as e:
            ready.append((j, CheckpointResult(ck.rel, ck.step, [], error=str(e))))
            continue
        records = [new_record(ck, r) for r in refs]
        notes = list(ck.notes)
        if not records:
            notes.append(why_nothing(ck, all_refs, settings))
        res = CheckpointResult(ck.rel, ck.step, records, notes=notes, step_unit=ck.step_unit)
        if not refs:
            ready.append((j, res))
            continue
        pending[j] = _Pending(res, len(refs))
        order = sorted(range(len(refs)), key=lambda k, refs=refs: -layer_flops(refs[k].shape))
        tasks.extend((j, k, refs[k]) for k in order)
    yield from ready
    if not tasks:
        return
    tick = progress(len(tasks)) if progress else None
    flops = sum(layer_flops(r.shape) for _, _, r in tasks)
    refs = [r for _, _, r in tasks]
    for t, (status, value) in run(
        analyze_refs,
        refs,
        (settings,),
        workers,
        tick,
        start_s=start_s,
        min_work_s=flops / FAST_FLOPS,
        on_demand=flops / len(tasks) >= ON_DEMAND_FLOPS,
    ):
        j, k, _ = tasks[t]
        p = pending[j]
        if status == "ok":
            set_fields(p.result.records[k], value)
        else:
            p.bad[k] = value
        p.left -= 1
        if p.left == 0:
            del pending[j]
            res = p.result
            if p.bad:  # as analyze_checkpoints: the first unreadable layer in file order fails the file
                res = CheckpointResult(res.rel, res.step, [], error=p.bad[min(p.bad)])
            yield j, res
