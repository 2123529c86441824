"""A process pool for per-checkpoint work, with BLAS threads capped at one per worker.

Why the cap: each worker running a multi-threaded BLAS on a 2-core machine
oversubscribes the cores; measured here, a 2-process SVD pool took 102 s
uncapped and 7.8 s capped. Why spawn: fork after numpy/torch have started
threads can deadlock. With one worker the work runs in this process (no
start-up cost), under the same one-thread cap, so results are identical.
A pool is only started when the work is worth its start-up, and the parent
works alongside its workers (see `run`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["AHEAD", "CHUNK", "POOL_START_S", "default_workers", "run", "shutdown"]

T = TypeVar("T")
R = TypeVar("R")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker() -> None:
    for v in _THREAD_VARS:
        os.environ[v] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import sys

    if "torch" in sys.modules:  # only if this worker already needed it
        sys.modules["torch"].set_num_threads(1)


CHUNK = 4  # most items per call of fn: amortises a pool task's ~0.1-0.2 ms round trip, and lets fn batch
AHEAD = 2  # tasks queued per worker, so a worker never waits for the parent to hand out more

POOL_START_S = 0.35  # measured: spawning 2 workers that import numpy costs ~0.3 s
TORCH_IMPORT_S = 2.0  # measured: `import torch` in a fresh worker, before it reads its first .pt file


def worker_start_seconds(uses_torch: bool) -> float:
    """What one worker costs before its first result: spawn + numpy, plus torch for torch files."""
    return POOL_START_S + (TORCH_IMPORT_S if uses_torch else 0.0)


def workers_for(work_s: float, start_s: float, most: int) -> int:
    """How many processes (this one included) pay for themselves on `work_s` seconds of work.

    Going from w-1 to w processes saves work_s/(w-1) - work_s/w = work_s/(w(w-1))
    and costs about one worker start-up; add workers while the saving is larger.
    """
    w = 1
    while w < most and work_s / ((w + 1) * w) >= start_s:
        w += 1
    return w


# One pool per process, kept between calls: a notebook that rescans, or `report`
# after `scan` in one process, pays the workers' start-up once. Idle workers
# cost nothing and are joined by concurrent.futures at interpreter exit.
_pool: tuple[int, ProcessPoolExecutor] | None = None


def _executor(processes: int) -> ProcessPoolExecutor:
    global _pool
    if _pool is not None and _pool[0] == processes:
        return _pool[1]
    shutdown()
    import multiprocessing as mp

    ex = ProcessPoolExecutor(
        max_workers=processes, mp_context=mp.get_context("spawn"), initializer=_init_worker
    )
    _pool = (processes, ex)
    return ex


def shutdown() -> None:
    """Stop the kept pool (tests; or to free memory in a long notebook session)."""
    global _pool
    if _pool is not None:
        _pool[1].shutdown(wait=True, cancel_futures=True)
        _pool = None


def _chunk(remaining: int, processes: int) -> int:
    """Guided chunk size: big while much is left, single items near the end.

    Work queued to a worker cannot be taken back, so whoever finishes first
    waits for it; shrinking chunks keep that wait to about one item.
    """
    return max(1, min(CHUNK, remaining // (4 * processes)))


def run(
    fn: Callable[..., list[R]],
    items: Iterable[T],
    args: tuple = (),
    workers: int = 1,
    on_done: Callable[[], None] | None = None,
    start_s: float | None = None,
    min_work_s: float = 0.0,
    on_demand: bool = False,
) -> Iterator[tuple[int, R]]:
    """Yield (index, result) as items finish, where fn(list_of_items, *args) returns one
    result per item; `on_done` ticks a progress bar once per item.

    `fn` must be a module-level function (it is pickled by name for spawn workers)
    and gets up to CHUNK items at a time, so it can share work between them.
    The parent is one of the `workers`: it spawns workers-1 processes and feeds
    them chunks from the front of the list, AHEAD tasks each, while it takes
    chunks from the back itself, so no core idles while a worker boots or at
    the end. Unless a pool is already running, the first item runs here first
    and a pool is started only when the rest of the work, timed on that item,
    outweighs its start-up: rescanning a few new checkpoints never pays ~0.3 s
    per worker for nothing (the second item is timed when there is one: the first
    pays this process's imports). `workers` is an upper bound: the count used is
    chosen from that timing and `start_s`, one worker's start-up (~2.3 s when
    it must import torch for .pt files), see `workers_for`. `min_work_s`, a lower
    bound on the seconds of all the work (the caller's estimate from matrix
    shapes), skips that timing when it already pays for every worker: a big
    checkpoint split by layer would otherwise run its first two layers alone.
    `on_demand`: for few long items (a checkpoint's layers), see `_on_demand`.
    """
    import time
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    from threadpoolctl import threadpool_limits

    items = list(items)
    if not items:
        return

    def done_here(a: int, b: int) -> Iterator[tuple[int, R]]:
        for i, r in zip(range(a, b), fn(items[a:b], *args), strict=True):
            if on_done:
                on_done()
            yield i, r

    lo, hi = 0, len(items)  # items[lo:hi] are not yet handed out
    with threadpool_limits(1):
        warm = workers > 1 and _pool is not None and _pool[0] == workers - 1
        cold = not warm
        start = POOL_START_S if start_s is None else start_s
        if not warm and workers > 1 and workers_for(min_work_s, start, workers) == workers:
            warm = True  # sure to pay: start the pool now
        if not warm:
            t0 = time.perf_counter()
            yield from done_here(0, 1)
            lo = 1
            per_item = time.perf_counter() - t0
            if hi - lo >= 2:
                # the first item paid this process's one-off imports (torch: ~2 s); time a second
                t0 = time.perf_counter()
                yield from done_here(1, 2)
                lo = 2
                per_item = time.perf_counter() - t0
            workers = workers_for(per_item * (hi - lo), start, workers)
            if workers <= 1:
                while lo < hi:
                    c = min(CHUNK, hi - lo)
                    yield from done_here(lo, lo + c)
                    lo += c
                return
        ex = _executor(workers - 1)
        if on_demand:
            yield from _on_demand(
                ex, workers - 1, done_here, fn, items, args, lo, hi, on_done, cold and lo == 0
            )
            return
        inflight: dict = {}  # future -> item indices
        try:
            while lo < hi or inflight:
                while lo < hi and len(inflight) < AHEAD * (workers - 1):
                    c = _chunk(hi - lo, workers)
                    inflight[ex.submit(fn, items[lo : lo + c], *args)] = range(lo, lo + c)
                    lo += c
                if lo < hi:
                    c = _chunk(hi - lo, workers)
                    hi -= c
                    yield from done_here(hi, hi + c)
                    done = [f for f in inflight if f.done()]
                else:
                    done = wait(inflight, return_when=FIRST_COMPLETED).done
                for f in done:
                    for i, r in zip(inflight.pop(f), f.result(), strict=True):
                        if on_done:
                            on_done()
                        yield i, r
        except BrokenProcessPool:
            shutdown()  # a worker died (e.g. out of memory): next call starts afresh
            raise
        finally:
            for f in inflight:
                f.cancel()  # a consumer that stops early must not leave work queued


def _on_demand(
    ex, nproc: int, done_here, fn, items: list, args: tuple, lo: int, hi: int, on_done, first_here: bool
):
    """One item per worker at a time, handed out by a thread the moment a worker is free.

    Why: with long items (seconds each) a queued item cannot be taken back, so
    AHEAD=2 can leave the parent idle at the end while a worker still has two to
    go; one item per worker avoids that, and a dispatcher thread (not the parent,
    busy with its own item) refills a free worker at once. The parent takes items
    from the back, and the first (largest) one itself when the pool is cold, while
    the workers boot; the dispatcher takes them from the front.
    """
    import queue
    import threading
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    lock = threading.Lock()
    bounds = [lo, hi]  # items[bounds[0]:bounds[1]] are not yet handed out
    finished: queue.SimpleQueue = queue.SimpleQueue()  # (index, future), (None, exception) or None at the end
    stop = threading.Event()

    def take(front: bool) -> int | None:
        with lock:
            if bounds[0] >= bounds[1]:
                return None
            if front:
                bounds[0] += 1
                return bounds[0] - 1
            bounds[1] -= 1
            return bounds[1]

    def dispatch() -> None:
        inflight: dict = {}
        try:
            while not stop.is_set():
                while len(inflight) < nproc:
                    i = take(front=True)
                    if i is None:
                        break
                    inflight[ex.submit(fn, items[i : i + 1], *args)] = i
                if not inflight:
                    break
                for f in wait(inflight, return_when=FIRST_COMPLETED).done:
                    finished.put((inflight.pop(f), f))
        except BaseException as e:  # noqa: BLE001 - handed to the parent, which raises it
            finished.put((None, e))
        finally:
            for f in inflight:
                f.cancel()
            finished.put(None)

    def drain(block: bool) -> Iterator[tuple[int, object]]:
        while True:
            try:
                got = finished.get(block=block)
            except queue.Empty:
                return
            if got is None:
                ended[0] = True
                return
            i, f = got
            if i is None:
                raise f
            (r,) = f.result()
            if on_done:
                on_done()
            yield i, r
            block = False

    ended = [False]
    first = take(front=True) if first_here else None
    t = threading.Thread(target=dispatch, name="grokwatch-dispatch", daemon=True)
    t.start()
    try:
        if first is not None:
            yield from done_here(first, first + 1)
        while (i := take(front=False)) is not None:
            yield from done_here(i, i + 1)
            yield from drain(block=False)
        while not ended[0]:
            yield from drain(block=True)
    except BrokenProcessPool:
        shutdown()
        raise
    finally:
        stop.set()  # the dispatcher hands out nothing more and ends when its worker's item does
        t.join(timeout=1.0)  # Ctrl-C must not wait for a long layer; a daemon thread cannot hold exit
