"""Run a scan's work on a Dask cluster instead of the local process pool.

Why Dask: it is the well-kept scheduler that already runs on laptops (`LocalCluster`),
on a `dask scheduler` + `dask worker` pair and on SLURM/PBS (`dask-jobqueue`), and it
retries the tasks of a worker that dies. It is an extra (`pip install 'grokwatch[dask]'`)
and is imported only when a scheduler is asked for.

Units of work are the local pool's: whole checkpoints when there are many, layers when
there are few or large ones (`split.should_split` for the cluster's thread count). Then
the client lists each checkpoint's layers (safetensors: headers only) and puts the
records back together with the pool's own `split.plan_layers`, so they are bitwise those
of `-j1` either way.

What travels: tasks carry checkpoint or tensor *paths* (made absolute, so a worker started
in another folder finds them on the shared file system) and `Settings`; workers read the
tensors themselves and send back plain records. Weights never pass through the scheduler
or the client. The client yields each checkpoint's result as soon as it is complete, so
`scan_folder` writes it to the cache at once: an interrupted scan loses nothing finished
and a rerun sends only the missing checkpoints. Workers must run this grokwatch
(`_check_versions`, one round trip when the client connects).

    result = scan_folder("/shared/runs/long", scheduler="tcp://head:8786")
    result = scan_folder("runs/mnist", scheduler="local", workers=2)   # a LocalCluster
    result = scan_folder("runs/mnist", scheduler=client)               # your own distributed.Client
    with shared_scheduler("local", workers=2) as shared:               # one LocalCluster for both
        a, b = scan_folder("runs/a", scheduler=shared), scan_folder("runs/b", scheduler=shared)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from grokwatch.analyze import CheckpointResult, Settings, analyze_checkpoints
from grokwatch.checkpoints import Checkpoint, TensorRef
from grokwatch.errors import GrokwatchError, SchedulerError
from grokwatch.pool import _chunk
from grokwatch.split import ON_DEMAND_FLOPS, LayerTask, analyze_refs, layer_flops, plan_layers, should_split

__all__ = [
    "CONNECT_TIMEOUT_S",
    "INSTALL_HINT",
    "LOCAL",
    "WORKERS_TIMEOUT_S",
    "SharedScheduler",
    "analyze_on_cluster",
    "chunk_sizes",
    "layer_groups",
    "shared_scheduler",
]

LOCAL = "local"  # `--scheduler local`: start a LocalCluster for this scan (or these runs)
CONNECT_TIMEOUT_S = 10.0  # how long to try an unreachable scheduler before saying so
# how long a scheduler given by address may have no worker at all before the scan says so, rather
# than wait for ever (a batch system may take a while to start them; a Client of your own waits)
WORKERS_TIMEOUT_S = 60.0
INSTALL_HINT = "--scheduler needs Dask: pip install 'grokwatch[dask]'"


def _distributed():
    """`distributed`, or a SchedulerError saying which extra to install."""
    try:
        import distributed
    except ImportError:
        raise SchedulerError(INSTALL_HINT) from None
    return distributed


_capped = False  # set in a worker process once its BLAS threads are capped


def _one_blas_thread() -> None:
    """One BLAS thread per task, as in the local pool (`pool._init_worker`), and for the same reason:
    a worker per core, each running a multi-threaded BLAS, oversubscribes the cores (and the
    numbers are then bitwise those of `-j1`). Done in the task, not in a worker plugin, so a
    worker started by hand (`dask worker`, dask-jobqueue) is capped like a LocalCluster's.
    Cheap after the first task: the limits stay set in the worker process."""
    import sys

    global _capped
    if not _capped:
        from grokwatch.pool import _init_worker

        _init_worker()
        _capped = True
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:  # torch was first imported by this task
        torch.set_num_threads(1)


def _analyze(cks: list[Checkpoint], settings: Settings) -> list[CheckpointResult]:
    """The whole-checkpoint task a worker runs: `analyze_checkpoints` under the one-thread cap."""
    _one_blas_thread()
    return analyze_checkpoints(cks, settings)


def _analyze_refs(refs: list[TensorRef], settings: Settings) -> list[tuple[str, object]]:
    """The per-layer task a worker runs: `split.analyze_refs` (the local pool's) under the one-thread cap."""
    _one_blas_thread()
    return analyze_refs(refs, settings)


def chunk_sizes(n: int, slots: int) -> list[int]:
    """Task sizes for n checkpoints on `slots` worker threads: up to CHUNK while much is left,
    single checkpoints near the end, like the local pool's guided chunks (`pool._chunk`), so a
    task's round trip is amortised and nobody waits long for the last one."""
    sizes, left = [], n
    while left:
        c = _chunk(left, max(1, slots))
        sizes.append(c)
        left -= c
    return sizes


def layer_groups(tasks: list[LayerTask], slots: int) -> list[list[int]]:
    """Indices into `tasks` grouped into Dask tasks the way the local pool chunks layers.

    Up to `pool.CHUNK` layers per task while much is left, single layers near the end (`chunk_sizes`'
    rule: a task's round trip, ~1 ms on a scheduler, is amortised over small layers and nobody
    waits long for the last one). A layer of ON_DEMAND_FLOPS or more goes alone (the pool hands
    those out one at a time), and a group never spans two checkpoints, so a task that fails
    fails only its own checkpoint.
    """
    groups: list[list[int]] = []
    room = 0  # how many more layers the last group may take
    for t, task in enumerate(tasks):
        small = layer_flops(task.ref.shape) < ON_DEMAND_FLOPS
        if room and small and tasks[groups[-1][0]].checkpoint == task.checkpoint:
            groups[-1].append(t)
            room -= 1
            continue
        groups.append([t])
        room = _chunk(len(tasks) - t, max(1, slots)) - 1 if small else 0
    return groups


def _absolute(ck: Checkpoint, cwd: Path) -> Checkpoint:
    """`ck` with absolute paths: a worker's current folder is not the client's."""
    return replace(ck, path=cwd / ck.path, files=[cwd / f for f in ck.files], notes=list(ck.notes))


def _absolute_ref(ref: TensorRef, cwd: Path) -> TensorRef:
    """`ref` with absolute paths (its file's and, with --base, the base model's), for the same reason."""
    base = None if ref.base_file is None else str(cwd / ref.base_file)
    return replace(ref, file=str(cwd / ref.file), base_file=base)


def _relative(res: CheckpointResult, prefix: str) -> CheckpointResult:
    """Messages as a local scan words them: the absolute prefix added by `_absolute` or
    `_absolute_ref` (in a worker's error line) taken off."""
    if res.error:
        res.error = res.error.replace(prefix, "")
    res.notes = [n.replace(prefix, "") for n in res.notes]
    return res


def _versions() -> dict[str, str]:
    """grokwatch's and numpy's versions in this process; `client.run` asks every worker the same."""
    import numpy

    import grokwatch

    return {"grokwatch": grokwatch.__version__, "numpy": numpy.__version__}


def _named(workers: list[str]) -> str:
    """At most three worker addresses, then how many more."""
    more = f" and {len(workers) - 3} more" if len(workers) > 3 else ""
    return ", ".join(workers[:3]) + more


def _check_versions(client: Any, warnings: list[str] | None) -> None:
    """Refuse workers that run another grokwatch than this process; warn when their numpy differs.

    Why: the client lists layers and rebuilds records, workers compute them; two versions of
    grokwatch could disagree on either (a changed record field, a changed fit), silently. Another
    numpy (with its own LAPACK build) may round eigenvalues differently in the last bits, so the
    records would no longer be bitwise those of a local scan: worth a line, not a refusal.
    One round trip (`client.run` on every worker at once); a worker that fails to answer, or
    joins later, is not checked.
    """
    here = _versions()
    theirs = {w: v for w, v in client.run(_versions, on_error="return").items() if isinstance(v, dict)}
    for package in ("grokwatch", "numpy"):
        other = sorted(w for w, v in theirs.items() if v.get(package) != here[package])
        if not other:
            continue
        versions = ", ".join(sorted({str(theirs[w].get(package)) for w in other}))
        who = f"Dask worker{'s' if len(other) > 1 else ''} {_named(other)} run{'' if len(other) > 1 else 's'}"
        if package == "grokwatch":
            raise SchedulerError(
                f"{who} grokwatch {versions}, this process grokwatch {here[package]}: "
                "install the same grokwatch on every worker"
            )
        if warnings is not None:
            warnings.append(
                f"{who} numpy {versions}, this process numpy {here[package]}: eigenvalues, and so "
                "alpha, may differ from a local scan's in the last bits"
            )


class SharedScheduler:
    """One scheduler for several scans in a row (`shared_scheduler`): its LocalCluster started, or
    its address connected, on the first scan that has work for it, and kept for the others.

    Pass it as `scan_folder(..., scheduler=shared)`. Lazily, so runs that are all cached still
    start no cluster.
    """

    def __init__(self, scheduler: Any, workers: int | None, stack: ExitStack):
        self.scheduler = scheduler
        self.workers = workers
        self._stack = stack
        self._client: Any = None

    def client(self, warnings: list[str] | None = None) -> Any:
        """The connected Client, opened (and its workers' versions checked) on the first call."""
        if self._client is None:
            self._client = self._stack.enter_context(_open(self.scheduler, self.workers, warnings))
        return self._client


@contextmanager
def shared_scheduler(scheduler: Any, workers: int | None = None) -> Iterator[Any]:
    """`scheduler` made shareable by several `scan_folder` calls: `report A B --scheduler local` starts
    one LocalCluster, not one per run (~2 s each). A string becomes a `SharedScheduler`, closed
    (with what it opened) when the block ends; a Client of your own or None is passed as it is.
    """
    if not isinstance(scheduler, str):
        yield scheduler
        return
    with ExitStack() as stack:
        yield SharedScheduler(scheduler, workers, stack)


@contextmanager
def _open(scheduler: Any, workers: int | None, warnings: list[str] | None = None) -> Iterator[Any]:
    """A connected Client whose workers run this grokwatch (`_check_versions`); see `_client`."""
    if isinstance(scheduler, SharedScheduler):
        yield scheduler.client(warnings)
        return
    with _client(scheduler, workers) as client:
        _check_versions(client, warnings)
        yield client


@contextmanager
def _client(scheduler: Any, workers: int | None) -> Iterator[Any]:
    """A connected Client: the caller's own, a new LocalCluster's, or one to a scheduler address.

    Only what is opened here is closed here; an address that does not answer within
    CONNECT_TIMEOUT_S is one SchedulerError naming it.
    """
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler == LOCAL:
        from grokwatch.pool import default_workers

        cluster = distributed.LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never "Port 8787 is already in use" on stderr
            silence_logs=logging.ERROR,
        )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    # a lost scheduler is reported once, as a SchedulerError; not also as the client's own log line
    log = logging.getLogger("distributed.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield from _connect(distributed, scheduler)
    finally:
        log.setLevel(level)


def _connect(distributed, scheduler: str) -> Iterator[Any]:
    try:
        client = distributed.Client(str(scheduler), timeout=CONNECT_TIMEOUT_S)
    except ValueError as e:  # "missing port number in address 'head'"
        raise GrokwatchError(
            f"--scheduler {scheduler}: not a scheduler address ({e}); give tcp://HOST:8786 or '{LOCAL}'"
        ) from None
    except (OSError, TimeoutError):
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S:g} s"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except (TimeoutError, OSError):
            raise SchedulerError(
                f"the Dask scheduler at {scheduler} has no workers (waited {WORKERS_TIMEOUT_S:g} s); "
                f"start some: dask worker {scheduler} --nthreads 1"
            ) from None
        yield client


class _Tasks:
    """A scan's futures on the cluster, each with what it computes, yielded as they finish.

    The part both kinds of task share: losing the scheduler is one SchedulerError, and whatever
    is still queued when the scan stops (done, Ctrl-C, the caller stopping early) is cancelled.
    """

    def __init__(self, client: Any, distributed: Any):
        self.client = client
        self.held: dict[Any, list[int]] = {}  # future -> the indices it computes
        self.finished = distributed.as_completed()

    def submit(self, fn: Callable, held: list[int], *args: Any) -> None:
        f = self.client.submit(fn, *args, pure=False)
        self.held[f] = held
        self.finished.add(f)

    def __iter__(self) -> Iterator[tuple[list[int], Any, Exception | None]]:
        """(indices, the task's result, None), or (indices, None, what it raised), as tasks finish."""
        for f in self.finished:
            held = self.held.pop(f, None)
            if held is None:  # cancelled by `cancel`
                continue
            try:
                yield held, f.result(), None
            except Exception as e:  # noqa: BLE001 - the caller reports every failure per checkpoint
                if self.client.status not in ("running", "connecting"):
                    raise SchedulerError(
                        f"lost the Dask scheduler at {self.client.scheduler.address} mid-scan; "
                        "finished checkpoints are cached, rerun to resume"
                    ) from None
                yield held, None, e

    def cancel(self, which: Callable[[list[int]], bool] = lambda held: True) -> list[list[int]]:
        """Cancel the tasks whose indices `which` picks (all by default); returns their indices."""
        gone = [f for f, held in self.held.items() if which(held)]
        dropped = [self.held.pop(f) for f in gone]
        if gone:
            try:
                self.client.cancel(gone)
            except Exception:  # noqa: BLE001, S110 - the client may already be gone
                pass
        return dropped


def analyze_on_cluster(
    scheduler: Any,
    checkpoints: list[Checkpoint],
    settings: Settings,
    workers: int | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
    split: bool | None = None,
    warnings: list[str] | None = None,
) -> Iterator[tuple[int, CheckpointResult]]:
    """Yield (index, CheckpointResult) for `checkpoints` as the cluster finishes them.

    The drop-in for the local pool in `scan_folder`. `scheduler` is "local" (a LocalCluster
    of `workers` processes, one thread each), a scheduler address ("tcp://host:8786"), a
    `distributed.Client` or a `SharedScheduler`. Tasks are sized as the local pool's: whole
    checkpoints, or, when `split.should_split` says so for the cluster's thread count (few or
    large checkpoints; `split` forces it either way), layers (`_by_layer`). `progress` is
    `scan_folder`'s: called once with the number of checkpoints (of layers, when split) and
    ticked per item. A worker lost mid-task is retried by Dask (up to
    `distributed.scheduler.allowed-failures` times); a task that still fails, or raises, makes
    its checkpoint an `.error` line naming its file (exit 3 in the CLI), never a silent gap.
    Losing the scheduler raises SchedulerError, as do workers running another grokwatch
    (`_check_versions`; another numpy is a line added to `warnings`); what was yielded
    before is already cached.
    """
    if not checkpoints:
        return
    distributed = _distributed()
    cwd = Path.cwd()
    prefix = str(cwd) + os.sep
    with _open(scheduler, workers, warnings) as client:
        slots = sum(client.nthreads().values()) or (workers or 1)
        by_layer = should_split(checkpoints, slots) if split is None else split
        tasks = _Tasks(client, distributed)
        try:
            if by_layer:
                done = _by_layer(tasks, checkpoints, settings, slots, progress, cwd)
            else:
                done = _by_checkpoint(tasks, checkpoints, settings, slots, progress, cwd)
            for i, res in done:
                # a path given absolute stays absolute, even under the current folder
                yield i, res if checkpoints[i].path.is_absolute() else _relative(res, prefix)
        finally:  # Ctrl-C, or the caller stopped early: leave nothing queued on the cluster
            tasks.cancel()


def _by_checkpoint(
    tasks: _Tasks,
    checkpoints: list[Checkpoint],
    settings: Settings,
    slots: int,
    progress: Callable[[int], Callable[[], None]] | None,
    cwd: Path,
) -> Iterator[tuple[int, CheckpointResult]]:
    """Whole checkpoints per task (`chunk_sizes`). A task that fails with several checkpoints is
    split into single ones, each tried once more, so its neighbours still count."""
    shipped = [_absolute(ck, cwd) for ck in checkpoints]
    tick = progress(len(checkpoints)) if progress else None
    lo = 0
    for c in chunk_sizes(len(shipped), slots):
        tasks.submit(_analyze, list(range(lo, lo + c)), shipped[lo : lo + c], settings)
        lo += c
    for idx, results, error in tasks:
        if error is not None:
            if len(idx) > 1:
                for i in idx:  # find the one checkpoint that fails; the others still count
                    tasks.submit(_analyze, [i], [shipped[i]], settings)
                continue
            results = [_failed(checkpoints[idx[0]], error)]
        for i, res in zip(idx, results, strict=True):
            if tick:
                tick()
            yield i, res


def _by_layer(
    tasks: _Tasks,
    checkpoints: list[Checkpoint],
    settings: Settings,
    slots: int,
    progress: Callable[[int], Callable[[], None]] | None,
    cwd: Path,
) -> Iterator[tuple[int, CheckpointResult]]:
    """Layers per task (`layer_groups`), listed and put back together here by `split.plan_layers`,
    as the local pool's `analyze_split` does: records in file order, bitwise those of `-j1`.

    The client reads only headers (safetensors; torch files are memory-mapped); workers read
    the tensors. Each checkpoint is yielded as soon as its last layer is in. A task that raises
    (not an unreadable file: `analyze_refs` returns that as the file's error line) or whose
    worker keeps dying fails its checkpoint at once with `_failed`'s line; the checkpoint's
    other tasks are cancelled.
    """
    plan = plan_layers(checkpoints, settings)
    yield from plan.ready
    if not plan.tasks:
        return
    tick = progress(len(plan.tasks)) if progress else None
    for group in layer_groups(plan.tasks, slots):
        refs = [_absolute_ref(plan.tasks[t].ref, cwd) for t in group]
        tasks.submit(_analyze_refs, group, refs, settings)
    for group, outcomes, error in tasks:
        j = plan.tasks[group[0]].checkpoint
        if error is None:
            for t, outcome in zip(group, outcomes, strict=True):
                if tick:
                    tick()
                done = plan.record(plan.tasks[t], outcome)
        else:
            dropped = tasks.cancel(lambda held, j=j: plan.tasks[held[0]].checkpoint == j)
            for _ in range(len(group) + sum(len(g) for g in dropped) if tick else 0):
                tick()  # the checkpoint's layers are over, one way or the other
            done = plan.fail(j, _failed(checkpoints[j], error).error or "")
        if done is not None:
            yield done


def _failed(ck: Checkpoint, e: BaseException) -> CheckpointResult:
    """One error line for a checkpoint whose task failed on the cluster."""
    name = e.__class__.__name__
    if name == "KilledWorker":
        why = "a Dask worker died each time it analysed this checkpoint (out of memory?)"
    else:
        text = str(e).splitlines()[0] if str(e) else ""
        why = f"analysis failed on a Dask worker ({name}{': ' + text if text else ''})"
    return CheckpointResult(ck.rel, ck.step, [], error=f"{ck.path}: {why}")
