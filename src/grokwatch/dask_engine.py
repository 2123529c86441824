"""Run a scan's per-checkpoint work on a Dask cluster instead of the local process pool.

Why Dask: it is the well-kept scheduler that already runs on laptops (`LocalCluster`),
on a `dask scheduler` + `dask worker` pair and on SLURM/PBS (`dask-jobqueue`), and it
retries the tasks of a worker that dies. It is an extra (`pip install 'grokwatch[dask]'`)
and is imported only when a scheduler is asked for.

What travels: tasks carry checkpoint *paths* (made absolute, so a worker started in
another folder finds them on the shared file system) and `Settings`; workers read the
tensors themselves and send back plain records. Weights never pass through the scheduler
or the client. The client yields each result as it arrives, so `scan_folder` writes it
to the cache at once: an interrupted scan loses nothing finished and a rerun sends only
the missing checkpoints.

    result = scan_folder("/shared/runs/long", scheduler="tcp://head:8786")
    result = scan_folder("runs/mnist", scheduler="local", workers=2)   # a LocalCluster
    result = scan_folder("runs/mnist", scheduler=client)               # your own distributed.Client
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from grokwatch.analyze import CheckpointResult, Settings, analyze_checkpoints
from grokwatch.checkpoints import Checkpoint
from grokwatch.errors import GrokwatchError, SchedulerError
from grokwatch.pool import CHUNK

__all__ = [
    "CONNECT_TIMEOUT_S",
    "INSTALL_HINT",
    "LOCAL",
    "WORKERS_TIMEOUT_S",
    "analyze_on_cluster",
    "chunk_sizes",
]

LOCAL = "local"  # `--scheduler local`: start a LocalCluster for this scan
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
    """The task a worker runs: `analyze_checkpoints` under the one-thread cap."""
    _one_blas_thread()
    return analyze_checkpoints(cks, settings)


def chunk_sizes(n: int, slots: int) -> list[int]:
    """Task sizes for n checkpoints on `slots` worker threads: up to CHUNK while much is left,
    single checkpoints near the end, like the local pool's guided chunks (`pool._chunk`), so a
    task's round trip is amortised and nobody waits long for the last one."""
    sizes, left = [], n
    while left:
        c = max(1, min(CHUNK, left // (4 * max(1, slots))))
        sizes.append(c)
        left -= c
    return sizes


def _absolute(ck: Checkpoint, cwd: Path) -> Checkpoint:
    """`ck` with absolute paths: a worker's current folder is not the client's."""
    return replace(ck, path=cwd / ck.path, files=[cwd / f for f in ck.files], notes=list(ck.notes))


def _relative(res: CheckpointResult, prefix: str) -> CheckpointResult:
    """Messages as a local scan words them: the absolute prefix added by `_absolute` taken off."""
    if res.error:
        res.error = res.error.replace(prefix, "")
    res.notes = [n.replace(prefix, "") for n in res.notes]
    return res


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
            dashboard_address=None,
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


def analyze_on_cluster(
    scheduler: Any,
    checkpoints: list[Checkpoint],
    settings: Settings,
    workers: int | None = None,
    on_done: Callable[[], None] | None = None,
) -> Iterator[tuple[int, CheckpointResult]]:
    """Yield (index, CheckpointResult) for `checkpoints` as the cluster finishes them.

    The drop-in for `pool.run(analyze_checkpoints, ...)` in `scan_folder`. `scheduler` is
    "local" (a LocalCluster of `workers` processes, one thread each), a scheduler address
    ("tcp://host:8786") or a `distributed.Client`. A worker lost mid-task is retried by Dask
    (up to `distributed.scheduler.allowed-failures` times); a task that still fails, or raises,
    is split into single checkpoints and retried once each, and a checkpoint that fails alone
    becomes an `.error` line naming its file (exit 3 in the CLI), never a silent gap. Losing
    the scheduler itself raises SchedulerError; what was yielded before is already cached.
    """
    if not checkpoints:
        return
    distributed = _distributed()
    cwd = Path.cwd()
    prefix = str(cwd) + os.sep
    shipped = [_absolute(ck, cwd) for ck in checkpoints]
    with _client(scheduler, workers) as client:
        slots = sum(client.nthreads().values()) or (workers or 1)
        futures: dict = {}  # future -> indices of its checkpoints

        def submit(idx: list[int]) -> Any:
            f = client.submit(_analyze, [shipped[i] for i in idx], settings, pure=False)
            futures[f] = idx
            return f

        lo = 0
        for c in chunk_sizes(len(shipped), slots):
            submit(list(range(lo, lo + c)))
            lo += c
        done = distributed.as_completed(list(futures))
        try:
            for f in done:
                idx = futures.pop(f)
                try:
                    results = f.result()
                except Exception as e:  # noqa: BLE001 - every failure is reported per checkpoint below
                    if client.status not in ("running", "connecting"):
                        raise SchedulerError(
                            f"lost the Dask scheduler at {client.scheduler.address} mid-scan; "
                            "finished checkpoints are cached, rerun to resume"
                        ) from None
                    if len(idx) > 1:
                        for i in idx:  # find the one checkpoint that fails; the others still count
                            done.add(submit([i]))
                        continue
                    results = [_failed(checkpoints[idx[0]], e)]
                for i, res in zip(idx, results, strict=True):
                    if on_done:
                        on_done()
                    # a path given absolute stays absolute, even under the current folder
                    yield i, res if checkpoints[i].path.is_absolute() else _relative(res, prefix)
        finally:
            if futures:  # Ctrl-C, or the caller stopped early: leave nothing queued on the cluster
                try:
                    client.cancel(list(futures))
                except Exception:  # noqa: BLE001, S110 - the client may already be gone
                    pass


def _failed(ck: Checkpoint, e: BaseException) -> CheckpointResult:
    """One error line for a checkpoint whose task failed on the cluster."""
    name = e.__class__.__name__
    if name == "KilledWorker":
        why = "a Dask worker died each time it analysed this checkpoint (out of memory?)"
    else:
        text = str(e).splitlines()[0] if str(e) else ""
        why = f"analysis failed on a Dask worker ({name}{': ' + text if text else ''})"
    return CheckpointResult(ck.rel, ck.step, [], error=f"{ck.path}: {why}")
