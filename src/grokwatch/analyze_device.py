"""Per-checkpoint work with the eigensolves on a torch device (`--device cuda`), in this process.

Why not the pool: one process owns the GPU, and the GPU's batched eigensolve
replaces the cores' parallelism. Everything but the eigensolve is the CPU
path's own code (`new_record`, `shape_fields`, `trap_fields`, `fit_values`), so
records differ from a CPU scan only by the eigensolver's rounding. The same
code runs on CPU torch in the tests (device "cpu").

    for j, res in analyze_on_device(checkpoints, Settings(), "cuda"):
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from grokwatch.analyze import (
    CheckpointResult,
    analysed_refs,
    fit_values,
    new_record,
    set_fields,
    shape_fields,
    trap_fields,
    weight_entropy_field,
    why_nothing,
)
from grokwatch.checkpoints import Checkpoint, TensorReader
from grokwatch.errors import GrokwatchError
from grokwatch.settings import Settings
from grokwatch.spectral.esd import NonFiniteError, matrices
from grokwatch.spectral.torch_eig import BATCH_BYTES, GramBatcher

__all__ = ["analyze_on_device"]


def analyze_on_device(
    cks: list[Checkpoint],
    settings: Settings,
    device: str,
    progress: Callable[[int], Callable[[], None]] | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[tuple[int, CheckpointResult]]:
    """Yield (index, CheckpointResult) per checkpoint; `progress(n_layers)` is ticked once per layer."""
    batcher = GramBatcher(device, batch_bytes)
    counts = [_count(ck, settings) for ck in cks]  # headers only for safetensors: cheap
    tick = progress(sum(counts)) if progress else None
    for j, ck in enumerate(cks):
        ticked = [0]

        def one_layer(ticked=ticked) -> None:
            ticked[0] += 1
            if tick:
                tick()

        try:
            res = _one(ck, settings, batcher, one_layer)
        except GrokwatchError as e:
            batcher.discard()  # this checkpoint's Grams still waiting
            res = CheckpointResult(ck.rel, ck.step, [], error=str(e))
        for _ in range(counts[j] - ticked[0]):
            one_layer()
        yield j, res


def _count(ck: Checkpoint, settings: Settings) -> int:
    try:
        return len(analysed_refs(ck, settings)[1])
    except GrokwatchError:
        return 0


def _one(ck: Checkpoint, settings: Settings, batcher: GramBatcher, tick) -> CheckpointResult:
    all_refs, refs = analysed_refs(ck, settings)
    records, keys = [], []  # keys[i]: the batcher keys of record i's matrices (None after an error)
    with TensorReader() as reader:
        for r in refs:
            rec = new_record(ck, r)
            W = reader.read(r)
            ks = None
            try:
                set_fields(rec, weight_entropy_field(W, settings))  # as the CPU path
                ks = [batcher.add(m) for m in matrices(np.asarray(W))]
                set_fields(rec, trap_fields(W, settings, r.layer))  # the weights are here only now
            except NonFiniteError as e:
                set_fields(rec, {"error": str(e)})
                ks = None
            except (ValueError, np.linalg.LinAlgError) as e:
                set_fields(rec, {"error": f"analysis failed: {e}"})
                ks = None
            del W
            keys.append(ks)
            records.append(rec)
            tick()
    evals = batcher.solve()
    for rec, r, ks in zip(records, refs, keys, strict=True):
        if ks is None:
            continue
        ev = evals[ks[0]] if len(ks) == 1 else np.sort(np.concatenate([evals[k] for k in ks]))
        set_fields(rec, shape_fields(r.shape, ev, settings))
        set_fields(rec, fit_values(ev, settings))
    notes = list(ck.notes)
    if not records:
        notes.append(why_nothing(ck, all_refs, settings))
    return CheckpointResult(ck.rel, ck.step, records, notes=notes, step_unit=ck.step_unit)
