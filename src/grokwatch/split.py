"""Per-layer work: when checkpoints are few or large, the pool hands out layers, not checkpoints.

Why: the pool's unit used to be a checkpoint, so one large checkpoint (an LLM's
~224 matrices) ran on one core whatever `-j` said, and its progress bar moved
once at the end. Here the parent lists each checkpoint's layers (for safetensors
from the header alone), workers read and eigensolve one tensor at a time, and
the parent rebuilds each `CheckpointResult` in file order, so records are the
same, bit for bit and in the same order, as `analyze_checkpoints` gives: both
run `layer_matrix_values` and `fit_values` on the same tensor under the same
one-thread BLAS cap. Listing the layers and putting the results back together
(`plan_layers`, `LayerPlan`) is shared with the Dask path's per-layer tasks
(`grokwatch.dask_engine`), so a cluster rebuilds checkpoints exactly as the pool does.

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
    "LayerPlan",
    "LayerTask",
    "analyze_refs",
    "analyze_split",
    "layer_flops",
    "plan_layers",
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


@dataclass(frozen=True)
class LayerTask:
    """One layer to hand out: which checkpoint it belongs to and where its record goes."""

    checkpoint: int  # index into the checkpoints given to `plan_layers`
    layer: int  # index of its record in the checkpoint's result (file order)
    ref: TensorRef


@dataclass
class LayerPlan:
    """A per-layer scan's work and how its outcomes become `CheckpointResult`s.

    The one implementation behind the local pool's `analyze_split` and Dask's per-layer tasks
    (`grokwatch.dask_engine`), so both put records back in file order and fail a file the same way
    as `analyze_checkpoints` does. Whoever runs the tasks feeds each outcome of `analyze_refs` to
    `record`, which returns the checkpoint's result once its last layer is in.
    """

    tasks: list[LayerTask] = field(default_factory=list)  # checkpoint by checkpoint, largest first in each
    ready: list[tuple[int, CheckpointResult]] = field(default_factory=list)  # nothing to compute
    pending: dict[int, _Pending] = field(default_factory=dict)  # checkpoint -> its result so far

    def flops(self) -> float:
        """Rough float64 operations of every task (`layer_flops`): what sizes a pool or a task."""
        return sum(layer_flops(t.ref.shape) for t in self.tasks)

    def record(self, task: LayerTask, outcome: tuple[str, object]) -> tuple[int, CheckpointResult] | None:
        """Put one ("ok", fields) or ("bad", line) outcome in place; (checkpoint, result) after its last.

        As `analyze_checkpoints`: the first unreadable layer in file order fails the file, with its line.
        An outcome for a checkpoint already failed (`fail`) is ignored.
        """
        p = self.pending.get(task.checkpoint)
        if p is None:
            return None
        status, value = outcome
        if status == "ok":
            set_fields(p.result.records[task.layer], value)
        else:
            p.bad[task.layer] = value
        p.left -= 1
        if p.left:
            return None
        del self.pending[task.checkpoint]
        res = p.result
        if p.bad:
            res = CheckpointResult(res.rel, res.step, [], error=p.bad[min(p.bad)])
        return task.checkpoint, res

    def fail(self, checkpoint: int, error: str) -> tuple[int, CheckpointResult] | None:
        """Fail a checkpoint whose layer could not be analysed at all (a task that raised on a cluster):
        its result is the one error line, and its other layers' outcomes are ignored. None if already done.
        """
        p = self.pending.pop(checkpoint, None)
        if p is None:
            return None
        return checkpoint, CheckpointResult(p.result.rel, p.result.step, [], error=error)


def plan_layers(cks: list[Checkpoint], settings: Settings) -> LayerPlan:
    """List every checkpoint's analysed layers (safetensors: from the headers alone) as tasks.

    Layers are queued checkpoint by checkpoint (so results, and the cache, fill in as the scan
    goes), the most expensive first within each (the last handed out are the short ones, so no
    core waits long at the end). A checkpoint whose layers cannot be listed is an error result
    at once, one with no analysable layer a result with `why_nothing`'s note; both go to `ready`.
    """
    plan = LayerPlan()
    for j, ck in enumerate(cks):
        try:
            all_refs, refs = analysed_refs(ck, settings)
        except GrokwatchError as e:
            plan.ready.append((j, CheckpointResult(ck.rel, ck.step, [], error=str(e))))
            continue
        records = [new_record(ck, r) for r in refs]
        notes = list(ck.notes)
        if not records:
            notes.append(why_nothing(ck, all_refs, settings))
        res = CheckpointResult(ck.rel, ck.step, records, notes=notes, step_unit=ck.step_unit)
        if not refs:
            plan.ready.append((j, res))
            continue
        plan.pending[j] = _Pending(res, len(refs))
        order = sorted(range(len(refs)), key=lambda k, refs=refs: -layer_flops(refs[k].shape))
        plan.tasks.extend(LayerTask(j, k, refs[k]) for k in order)
    return plan


def analyze_split(
    cks: list[Checkpoint],
    settings: Settings,
    workers: int,
    progress: Callable[[int], Callable[[], None]] | None = None,
    start_s: float | None = None,
) -> Iterator[tuple[int, CheckpointResult]]:
    """Yield (index into cks, CheckpointResult) as each checkpoint's last layer finishes.

    The layers of `plan_layers` run on the local pool; `progress(n_layers)` returns a callable
    ticked once per layer.
    """
    plan = plan_layers(cks, settings)
    yield from plan.ready
    if not plan.tasks:
        return
    tick = progress(len(plan.tasks)) if progress else None
    flops = plan.flops()
    for t, outcome in run(
        analyze_refs,
        [task.ref for task in plan.tasks],
        (settings,),
        workers,
        tick,
        start_s=start_s,
        min_work_s=flops / FAST_FLOPS,
        on_demand=flops / len(plan.tasks) >= ON_DEMAND_FLOPS,
    ):
        done = plan.record(plan.tasks[t], outcome)
        if done is not None:
            yield done
