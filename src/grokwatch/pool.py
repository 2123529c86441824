"""A process pool for per-checkpoint work, with BLAS threads capped at one per worker.

Why the cap: each worker running a multi-threaded BLAS on a 2-core machine
oversubscribes the cores; measured here, a 2-process SVD pool took 102 s
uncapped and 7.8 s capped. Why spawn: fork after numpy/torch have started
threads can deadlock. With one worker the work runs in this process (no
start-up cost), under the same one-thread cap, so results are identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

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


def _call(fn: Callable[..., R], item: Any, args: tuple) -> R:
    return fn(item, *args)


def run(fn: Callable[..., R], items: Iterable[T], args: tuple = (), workers: int = 1,
        on_done: Callable[[], None] | None = None) -> Iterator[tuple[int, R]]:
    """Yield (index, fn(item, *args)) as items finish; `on_done` ticks a progress bar.

    `fn` must be a module-level function (it is pickled by name for spawn workers).
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            for i, item in enumerate(items):
                r = fn(item, *args)
                if on_done:
                    on_done()
                yield i, r
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx,
                             initializer=_init_worker) as ex:
        futures = {ex.submit(_call, fn, item, args): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            r = fut.result()
            if on_done:
                on_done()
            yield futures[fut], r
