"""`scan_folder`: discover -> cache lookup -> pool -> records -> phase labels.

The library entry point behind `grokwatch scan`, `traps` and `report`, and the
one a notebook starts from:

    import grokwatch
    result = grokwatch.scan_folder("runs/mnist")
    result              # ScanResult('runs/mnist': 40 checkpoints, 3 layers, 0 errors)
    result.alpha_table()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grokwatch.analyze import CheckpointResult, Settings, analyze_checkpoints
from grokwatch.checkpoints import Checkpoint, discover
from grokwatch.checkpoints.cache import CACHE_NAME, Cache, identity
from grokwatch.checkpoints.discover import CHECKPOINT_PATTERNS
from grokwatch.checkpoints.names import DCP, LIGHTNING, SHARDED, TORCH
from grokwatch.device import resolve_device
from grokwatch.errors import NoCheckpointsError
from grokwatch.phases import PhaseRules, label_records
from grokwatch.pool import default_workers, run, worker_start_seconds
from grokwatch.records import COLUMNS, LayerRecord
from grokwatch.settings import DEFAULT_DEVICE, Device
from grokwatch.split import analyze_split, should_split

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ScanResult", "default_cache_path", "scan_folder"]

# one row per checkpoint in `ScanResult.phases()`
PHASE_COLUMNS = ["step", "checkpoint", "phase", "phase_reason", "train_acc", "test_acc"]


# pandas dtypes of the LayerRecord fields that are numbers (the others stay Python objects)
_DTYPES = {
    f.name: {"float | None": "float64", "int | None": "Int64", "int": "int64", "bool": "bool"}[f.type]
    for f in fields(LayerRecord)
    if f.type in ("float | None", "int | None", "int", "bool")
}


def _pandas():
    """pandas, imported on first use: the CLI and plain scans never pay for it."""
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - pandas is optional
        raise ImportError("ScanResult tables need pandas: pip install pandas") from e
    return pandas


@dataclass
class ScanResult:
    """Every layer record of one scanned folder, the files that could not be read, and how it was labelled.

    It reads like the list of its records (`for r in result`, `len(result)`,
    `result[0]`) and turns into DataFrames for a notebook:

        result.to_pandas()     # one row per (checkpoint, layer), the columns of `--format csv`
        result.alpha_table()   # step x layer table of alpha
        result.phases()        # one row per checkpoint: phase label and its evidence
    """

    root: str
    settings: Settings
    checkpoints: list[Checkpoint] = field(default_factory=list)
    records: list[LayerRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per bad file: "path: reason"
    warnings: list[str] = field(default_factory=list)  # one line per thing skipped: "path: why"
    computed: int = 0  # checkpoints analysed now (the rest came from the cache)
    rules: PhaseRules = field(default_factory=PhaseRules)  # the rules the records were labelled with

    def __iter__(self) -> Iterator[LayerRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def __repr__(self) -> str:
        layers = len({r.layer for r in self.records})
        return (
            f"ScanResult({self.root!r}: {len(self.checkpoints)} checkpoints, "
            f"{layers} layers, {len(self.errors)} errors)"
        )

    def to_pandas(self) -> pd.DataFrame:
        """One row per (checkpoint, layer) with exactly the columns of `grokwatch scan --format csv`.

        Values are those of the CSV: `shape` as "100x200"; float columns are
        float64 with NaN where the CSV cell is empty, integer columns that may
        be empty (step, n_tail, n_traps) are pandas' nullable Int64.

            df = scan_folder("runs/mnist").to_pandas()
            df[df.layer == "fc2.weight"][["step", "alpha"]]
        """
        pd = _pandas()
        rows = []
        for r in self.records:
            d = r.to_dict()
            row = {c: d.get(c) for c in COLUMNS}
            row["shape"] = "x".join(map(str, r.shape))
            rows.append(row)
        df = pd.DataFrame(rows, columns=COLUMNS)
        return df.astype({c: _DTYPES[c] for c in COLUMNS if c in _DTYPES})

    def alpha_table(self) -> pd.DataFrame:
        """alpha as a step x layer table (rows in checkpoint order, columns in file order).

        The index is the step (the checkpoint's path where it has none); a
        layer whose fit failed is NaN.

            scan_folder("runs/mnist").alpha_table().plot(logx=True)
        """
        pd = _pandas()
        layers: dict[str, None] = {}
        rows: dict[str, dict[str, float]] = {}
        index: dict[str, object] = {}
        for r in self.records:
            layers.setdefault(r.layer, None)
            rows.setdefault(r.checkpoint, {})[r.layer] = float("nan") if r.alpha is None else r.alpha
            index.setdefault(r.checkpoint, r.checkpoint if r.step is None else r.step)
        table = pd.DataFrame(
            [rows[ck] for ck in index],
            index=pd.Index(list(index.values()), name="step"),
            columns=list(layers),
        )
        table.columns.name = "layer"
        return table

    def phases(self) -> pd.DataFrame:
        """One row per checkpoint: step, checkpoint, phase, phase_reason, train_acc, test_acc.

        scan_folder("runs/mnist").phases().phase.value_counts()
        """
        pd = _pandas()
        seen: dict[str, dict] = {}
        for r in self.records:
            if r.checkpoint not in seen:
                d = r.to_dict()
                seen[r.checkpoint] = {c: d[c] for c in PHASE_COLUMNS}
        df = pd.DataFrame(list(seen.values()), columns=PHASE_COLUMNS)
        return df.astype({c: _DTYPES[c] for c in PHASE_COLUMNS if c in _DTYPES})


def default_cache_path(root: str | Path) -> Path:
    """`<root>/.grokwatch-cache.sqlite` (beside the file when `root` is one checkpoint)."""
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
    scheduler: str | Any | None = None,
    split: bool | None = None,
    device: str | Device = DEFAULT_DEVICE,
) -> ScanResult:
    """Analyse every layer of every checkpoint under `root` and label each checkpoint's phase.

    Results do not depend on `workers`; a checkpoint already in the cache with
    the same `settings` is not re-read.

        from grokwatch import PhaseRules, Settings, scan_folder
        result = scan_folder("runs/mnist", Settings(traps=True), rules=PhaseRules(trap_min=1))
        result.phases()

    rules: the phase thresholds (kept in `result.rules`, so `build_report(result)` uses the same).
    cache: True for `<root>/.grokwatch-cache.sqlite`, a path, or False.
    progress: called once with the number of checkpoints to compute (of layers,
    when split); returns a callable ticked after each one (the CLI's progress bar).
    scheduler: run the work on Dask instead of local processes (`pip install 'grokwatch[dask]'`):
    "local" (a LocalCluster of `workers` processes), "tcp://host:8786", a `distributed.Client`,
    or one cluster for several scans (`grokwatch.dask_engine.shared_scheduler`); the records are
    the same as without it. See `grokwatch.dask_engine`.
    split: hand out layers rather than checkpoints, locally or on Dask; None decides (few or large
    checkpoints for the processes, or the cluster's threads: `grokwatch.split.should_split`).
    Records are identical either way.
    device: "auto" (cuda when present), "cpu" or "cuda": where eigenvalues are
    computed; cuda runs in this process (workers unused). Cached records are
    reused across devices (alpha agrees within 1e-9; see docs/scan.md).
    Raises DeviceError for "cuda" without CUDA, before any work.
    Raises NoCheckpointsError when the folder is missing or holds none; bad
    files are listed in `.errors` and the rest is still analysed.
    With `scheduler`, raises SchedulerError when Dask is missing, the scheduler does not
    answer or its workers run another grokwatch (everything finished before is in the cache).
    """
    settings = settings or Settings()
    rules = rules or PhaseRules()
    torch_device = resolve_device(device)
    root = Path(root)
    if not root.exists():
        raise NoCheckpointsError(f"{root}: no such file or directory")
    checkpoints, bad = discover(root)
    result = ScanResult(str(root), settings, errors=[str(e) for e in bad], rules=rules)
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
    nworkers = workers if workers is not None else default_workers()
    work = [checkpoints[i] for i in todo]
    start_s = worker_start_seconds(uses_torch=any(_needs_torch(ck) for ck in work))
    if scheduler is not None:  # Dask: checkpoints or layers per task, chosen as below (dask_engine)
        from grokwatch.dask_engine import analyze_on_cluster

        done = analyze_on_cluster(scheduler, work, settings, workers, progress, split, result.warnings)
    elif torch_device and work:  # eigensolves on the GPU, batched, in this process
        from grokwatch.analyze_device import analyze_on_device

        done = analyze_on_device(work, settings, torch_device, progress)
    elif should_split(work, nworkers) if split is None else split:
        # few or large checkpoints: layers are the unit of work (and of progress)
        done = analyze_split(work, settings, nworkers, progress, start_s=start_s)
    else:
        tick = progress(len(todo)) if progress else None
        done = run(analyze_checkpoints, work, (settings,), nworkers, tick, start_s=start_s)
    for j, res in done:
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
    label_records(result.records, rules)
    return result


def _needs_torch(ck: Checkpoint) -> bool:
    """Whether analysing `ck` makes a worker import torch (~2 s once per worker)."""
    if ck.format in (TORCH, LIGHTNING, DCP):
        return True
    return ck.format == SHARDED and not ck.files[0].name.endswith(".safetensors.index.json")
