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


def _call_many(fn: Callable[..., R], items: list, args: tuple) -> list[R]:
    return [fn(item, *args) for item in items]


CHUNK = 4  # items per task: amortises the ~0.1-0.2 ms round trip of a pool task


POOL_START_S = 0.35  # measured: spawning 2 workers that import numpy costs ~0.3 s

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

    ex = ProcessPoolExecutor(max_workers=processes, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker)
    _pool = (processes, ex)
    return ex


def shutdown() -> None:
    """Stop the kept pool (tests; or to free memory in a long notebook session)."""
    global _pool
    if _pool is not None:
        _pool[1].shutdown(wait=True, cancel_futures=True)
        _pool = None


def run(fn: Callable[..., R], items: Iterable[T], args: tuple = (), workers: int = 1,
        on_done: Callable[[], None] | None = None) -> Iterator[tuple[int, R]]:
    """Yield (index, fn(item, *args)) as items finish; `on_done` ticks a progress bar.

    `fn` must be a module-level function (it is pickled by name for spawn workers).
    The first item always runs here; a new pool is started only when the rest
    of the work, timed on that item, outweighs the pool's start-up, so
    rescanning a few new checkpoints never pays ~0.3 s per worker for nothing.
    The parent is one of the `workers`: it spawns workers-1 processes and,
    while they boot and run, takes still-queued items from the tail of the
    list itself (a future it can cancel is one no worker has taken).
    """
    import time
    from concurrent.futures.process import BrokenProcessPool

    from threadpoolctl import threadpool_limits

    items = list(items)
    if not items:
        return
    with threadpool_limits(1):
        t0 = time.perf_counter()
        first = fn(items[0], *args)
        per_item = time.perf_counter() - t0
    if on_done:
        on_done()
    yield 0, first
    rest = items[1:]
    warm = _pool is not None and _pool[0] == workers - 1
    if not rest or workers <= 1 or (not warm and per_item * len(rest) < 2 * POOL_START_S):
        with threadpool_limits(1):
            for i, item in enumerate(rest, start=1):
                r = fn(item, *args)
                if on_done:
                    on_done()
                yield i, r
        return
    ex = _executor(workers - 1)
    chunks = [list(range(i, min(i + CHUNK, len(rest)))) for i in range(0, len(rest), CHUNK)]
    futures: list = []
    try:
        with threadpool_limits(1):
            futures = [ex.submit(_call_many, fn, [rest[i] for i in c], args) for c in chunks]
            pending = set(range(len(futures)))

            def harvest(block: bool):
                ready = [j for j in sorted(pending) if block or futures[j].done()]
                for j in ready:
                    results = futures[j].result()
                    pending.discard(j)
                    for i, r in zip(chunks[j], results, strict=True):
                        if on_done:
                            on_done()
                        yield i + 1, r

            for j in reversed(range(len(futures))):
                if j in pending and futures[j].cancel():
                    pending.discard(j)
                    for i in chunks[j]:
                        r = fn(rest[i], *args)
                        if on_done:
                            on_done()
                        yield i + 1, r
                yield from harvest(block=False)
            yield from harvest(block=True)
    except BrokenProcessPool:
        shutdown()  # a worker died (e.g. out of memory): next call starts afresh
        raise
    finally:
        for f in futures:
            f.cancel()  # a consumer that stops early must not leave work queued
