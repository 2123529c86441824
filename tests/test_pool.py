"""pool.run: every item exactly once, in any order, with the right result, in and out of process."""

from __future__ import annotations

import pytest

from grokwatch import pool


def squares(xs: list[int], offset: int) -> list[int]:
    """Module-level, so spawn workers can unpickle it by name."""
    return [x * x + offset for x in xs]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_item_once_with_its_result(workers, monkeypatch):
    monkeypatch.setattr(pool, "POOL_START_S", 0.0)  # force a real pool even for tiny work
    ticks = []
    items = list(range(57))  # not a multiple of CHUNK
    try:
        got = list(pool.run(squares, items, (3,), workers, on_done=lambda: ticks.append(1)))
        again = dict(pool.run(squares, items, (3,), workers))  # warm pool (or in-process again)
    finally:
        pool.shutdown()
    assert sorted(i for i, _ in got) == items
    assert dict(got) == again == {i: i * i + 3 for i in items}
    assert len(ticks) == len(items)


def test_chunks_shrink_to_one_near_the_end():
    assert pool._chunk(1000, 2) == pool.CHUNK
    assert pool._chunk(7, 2) == 1
    assert all(1 <= pool._chunk(n, w) <= min(n, pool.CHUNK) for n in range(1, 200) for w in (2, 3, 16))


def test_workers_chosen_from_the_work():
    # a worker is added only while it saves more than its start-up
    assert pool.workers_for(0.5, 0.35, 16) == 1  # less than two start-ups of work: stay in process
    assert pool.workers_for(0.7, 0.35, 16) == 2
    assert pool.workers_for(100.0, 0.35, 4) == 4  # capped by what the caller allows
    assert pool.workers_for(100.0, 0.35, 1) == 1
    # torch files: each worker imports torch first, so the same work wants fewer workers
    w_torch = pool.workers_for(6.0, pool.worker_start_seconds(uses_torch=True), 16)
    w_numpy = pool.workers_for(6.0, pool.worker_start_seconds(uses_torch=False), 16)
    assert w_torch == 2 and w_numpy == 4
    # the rule: w(w-1) * start <= work for the chosen w, and the next one would not pay
    for work in (0.1, 1.0, 3.3, 10.0, 50.0):
        w = pool.workers_for(work, 0.5, 64)
        assert w == 1 or work / (w * (w - 1)) >= 0.5
        assert work / ((w + 1) * w) < 0.5


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_on_demand_every_item_once_cold_warm_and_stopped_early(workers, monkeypatch):
    """One item per worker at a time, refilled by a dispatcher thread: same contract as the chunked pool."""
    monkeypatch.setattr(pool, "POOL_START_S", 0.0)
    ticks = []
    items = list(range(23))
    try:
        pool.shutdown()
        cold = list(pool.run(squares, items, (1,), workers, on_done=lambda: ticks.append(1), on_demand=True))
        warm = dict(pool.run(squares, items, (1,), workers, on_demand=True))
        it = pool.run(squares, items, (1,), workers, on_demand=True)
        first = [next(it), next(it)]
        it.close()  # a consumer that stops early: no hang, nothing left running
        again = dict(pool.run(squares, items, (1,), workers, on_demand=True))
    finally:
        pool.shutdown()
    assert sorted(i for i, _ in cold) == items and len(ticks) == len(items)
    assert dict(cold) == warm == again == {i: i * i + 1 for i in items}
    assert all(r == i * i + 1 for i, r in first)
