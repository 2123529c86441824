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
