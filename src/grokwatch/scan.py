"""`scan_folder`: discover -> cache lookup -> pool -> records -> phase labels.

The library entry point behind `grokwatch scan`, `traps` and `report`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.analyze import CheckpointResult, Settings, analyze_checkpoints
from grokwatch.checkpoints import Checkpoint, discover
from grokwatch.checkpoints.cache import CACHE_NAME, Cache, identity
from grokwatch.checkpoints.discover import CHECKPOINT_PATTERNS
from grokwatch.checkpoints.names import DCP, LIGHTNING, SHARDED, TORCH
from grokwatch.errors import NoCheckpointsError
from grokwatch.phases import PhaseRules, label_records
from grokwatch.pool import default_workers, run, worker_start_seconds
from grokwatch.records import LayerRecord


@dataclass
class ScanResult:
    root: str
    settings: Settings
    checkpoints: list[Checkpoint] = field(default_factory=list)
    records: list[LayerRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per bad file: "path: reason"
    warnings: list[str] = field(default_factory=list)  # one line per thing skipped: "path: why"
    computed: int = 0  # checkpoints analysed now (the rest came from the cache)

    # A ScanResult reads like the list of its records (for notebooks: `for r in scan_folder(d)`).
    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]


def default_cache_path(root: str | Path) -> Path:
    root = Path(root)
    return (root if root.is_dir() else root.parent) / CACHE_NAME


def scan_folder(
    root: str | Path,
    settings: Settings | None = None,
    *,
    workers: int | None = None,
    cache: bool | str | Path = True,
    rules: PhaseRules | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> ScanResult:
    """Analyse every layer of every checkpoint under `root`.

    cache: True for `<root>/.grokwatch-cache.sqlite`, a path, or False.
    progress: called once with the number of checkpoints to compute; returns a
    callable ticked after each one (the CLI's progress bar).
    Raises NoCheckpointsError when the folder is missing or holds none; bad
    files are listed in `.errors` and the rest is still analysed.
    """
    settings = settings or Settings()
    root = Path(root)
    if not root.exists():
        raise NoCheckpointsError(f"{root}: no such file or directory")
    checkpoints, bad = discover(root)
    result = ScanResult(str(root), settings, errors=[str(e) for e in bad])
    if not checkpoints:
        if bad:
            return result
        raise NoCheckpointsError(f"{root}: no checkpoints found ({CHECKPOINT_PATTERNS})")
    store = None
    if cache:
        store = Cache(default_cache_path(root) if cache is True else Path(cache))
    key = settings.cache_key()
    results: dict[int, CheckpointResult] = {}
    todo: list[int] = []
    idents: dict[int, str] = {}
    for i, ck in enumerate(checkpoints):
        hit = None
        if store is not None:
            try:
                idents[i] = identity(ck)
            except OSError:
                idents[i] = ""
            hit = store.get(idents[i], key) if idents[i] else None
        if hit is not None:
            results[i] = hit
        else:
            todo.append(i)
    tick = progress(len(todo)) if progress else None
    nworkers = workers if workers is not None else default_workers()
    work = [checkpoints[i] for i in todo]
    start_s = worker_start_seconds(uses_torch=any(_needs_torch(ck) for ck in work))
    for j, res in run(analyze_checkpoints, work, (settings,), nworkers, tick, start_s=start_s):
        i = todo[j]
        results[i] = res
        if store is not None and idents.get(i):
            store.put(idents[i], key, res)
    if store is not None:
        store.close()
    result.computed = len(todo)
    for i, ck in enumerate(checkpoints):
        res = results[i]
        result.warnings.extend(res.notes)
        if res.error:
            result.errors.append(res.error)
            continue
        if res.step is not None:
            ck.step, ck.step_unit = res.step, res.step_unit
        if res.records:
            result.checkpoints.append(ck)
    # Steps inside torch files (nanoGPT's iter_num, timm's epoch) are known only now: sort again.
    result.checkpoints.sort(key=lambda c: c.sort_key)
    epochs = [c.rel for c in result.checkpoints if c.step_unit == "epoch"]
    if epochs:  # the unit is said once: these "steps" count epochs
        shown = ", ".join(epochs[:3]) + (f" and {len(epochs) - 3} more" if len(epochs) > 3 else "")
        result.warnings.append(
            f"{root}: {len(epochs)} checkpoint(s) record an epoch and no step; their step is the epoch ({shown})"
        )
    by_rel = {results[i].rel: results[i] for i in range(len(checkpoints))}
    for ck in result.checkpoints:
        result.records.extend(by_rel[ck.rel].records)
    label_records(result.records, rules or PhaseRules())
    return result


def _needs_torch(ck: Checkpoint) -> bool:
    """Whether analysing `ck` makes a worker import torch (~2 s once per worker)."""
    if ck.format in (TORCH, LIGHTNING, DCP):
        return True
    return ck.format == SHARDED and not ck.files[0].name.endswith(".safetensors.index.json")
