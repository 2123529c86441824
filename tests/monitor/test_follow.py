"""`follow_folder` against a folder a background writer fills: each complete checkpoint once,
no false corrupt for a growing file, broken files reported once, deletions survived, restart cached."""

from __future__ import annotations

import threading
from pathlib import Path

from writer import Writer, ckpt_bytes, write_slowly

from grokwatch.checkpoints.atomic import write_atomic
from grokwatch.monitor import Alerts, Follower, follow_folder
from grokwatch.scan import scan_folder
from grokwatch.settings import PhaseRules, Settings

THRESHOLD = PhaseRules(rule="threshold")

FAST = dict(settle=0.3, poll=0.05)


class Recorder:
    def __init__(self, seen: dict[int, threading.Event] | None = None):
        self.checkpoints, self.errors, self.statuses, self.removed = [], [], [], []
        self.seen = seen or {}

    def checkpoint(self, st) -> None:
        self.checkpoints.append(st)
        if st.step in self.seen:
            self.seen[st.step].set()

    def error(self, line: str) -> None:
        self.errors.append(line)

    def status(self, text: str) -> None:
        self.statuses.append(text)

    def deleted(self, rel: str) -> None:
        self.removed.append(rel)


def _follow_writer(folder: Path, events: bool, **kw):
    seen = {1: threading.Event(), 3: threading.Event()}
    sink = Recorder(seen)
    writer = Writer(folder, seen)
    writer.start()
    # the writer's checkpoints are independent random draws, not a trajectory: label them one at a time
    out = follow_folder(
        folder, sink, Settings(traps=True), THRESHOLD, stop=writer.done, events=events, **FAST, **kw
    )
    writer.join(30)
    assert writer.error is None
    return out, sink


def _check(out, sink):
    steps = [st.step for st in sink.checkpoints]
    assert sorted(steps) == [1, 2, 3, 4] and len(set(steps)) == 4, steps  # each exactly once
    # no false "corrupt" for the slowly written step 3; each broken file named exactly once
    assert len(sink.errors) == 2, sink.errors
    assert sum("step_00000500.safetensors" in e for e in sink.errors) == 1
    assert sum("step_00000600.pt" in e for e in sink.errors) == 1
    assert not any("step_00000003" in e for e in sink.errors)
    assert any("waiting for" in s for s in sink.statuses)  # the folder did not exist at first
    assert sink.removed == ["step_00000001.safetensors"]
    by_step = {st.step: st for st in sink.checkpoints}
    assert by_step[4].phase == "anti-grokking" and by_step[4].level == "anti-grokking"
    assert by_step[2].phase != "anti-grokking"
    assert out.reason == "stopped"


def test_writer_events(tmp_path):
    out, sink = _check_run(tmp_path, events=True)


def test_writer_polling(tmp_path):
    _check_run(tmp_path, events=False)


def _check_run(tmp_path, events):
    folder = tmp_path / "run"
    out, sink = _follow_writer(folder, events)
    _check(out, sink)
    # the growing file's complete version was cached; the broken ones were not
    res = scan_folder(folder, Settings(traps=True), workers=1)
    assert res.computed == 1 and len(res.errors) == 2  # only the broken torch file (errors are never cached)
    # restart: nothing recomputed, the same labels as scan
    again = Recorder()
    out2 = follow_folder(folder, again, Settings(traps=True), idle_exit=0.5, **FAST)
    assert out2.run.computed == 0
    assert all(st.cached for st in again.checkpoints)
    assert [st.step for st in again.checkpoints] == [2, 3, 4]
    live = {r.checkpoint: r.phase for r in out2.run.records}
    assert live == {r.checkpoint: r.phase for r in res.records}
    return out, sink


def test_exit_on_first_anti(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    write_atomic(folder / "step_00000001.safetensors", ckpt_bytes(1, 1))
    write_atomic(folder / "step_00000002.safetensors", ckpt_bytes(2, 2, heavy=True))
    write_atomic(folder / "step_00000003.safetensors", ckpt_bytes(3, 3, heavy=True))
    sink = Recorder()
    out = follow_folder(
        folder, sink, Settings(traps=True), THRESHOLD, alerts=Alerts(exit_on="anti-grokking"), **FAST
    )
    assert out.reason == "exit-on" and out.alert.step == 2
    assert [st.step for st in sink.checkpoints] == [1, 2]  # stopped at the first one


def test_until(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for s in (1, 2, 3):
        write_atomic(folder / f"step_{s:08d}.safetensors", ckpt_bytes(s, s))
    sink = Recorder()
    out = follow_folder(folder, sink, Settings(), until=2, **FAST)
    assert out.reason == "until" and [st.step for st in sink.checkpoints] == [1, 2]


def test_stop_event_final_look(tmp_path):
    """`train --watch` stops the loop when training ends: one last look reads what is there at once."""
    folder = tmp_path / "run"
    folder.mkdir()
    stop = threading.Event()
    stop.set()
    write_atomic(folder / "step_00000001.safetensors", ckpt_bytes(1, 1))
    sink = Recorder()
    out = follow_folder(folder, sink, Settings(), settle=60, poll=0.05, stop=stop)
    assert out.reason == "stopped" and [st.step for st in sink.checkpoints] == [1]


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_follower_waits_for_stable_size(tmp_path):
    """Deterministic clock: a file in place is ready only after `settle` seconds without change."""
    import os

    clock = Clock()
    f = Follower(tmp_path, settle=1.0, clock=clock)
    p = tmp_path / "step_00000001.safetensors"
    p.write_bytes(ckpt_bytes(1, 1))
    now = os.stat(p).st_mtime
    os.utime(p, (now + 3600, now + 3600))  # "just written" whatever the wall clock says
    assert f.poll().checkpoints == []
    clock.t += 0.5
    assert f.poll().checkpoints == []
    clock.t += 0.6
    ready = f.poll().checkpoints
    assert [c.step for c in ready] == [1]
    f.finished(ready[0], None)
    clock.t += 5
    assert f.poll().checkpoints == []  # done: never again


def test_follower_renamed_is_ready_at_once(tmp_path):
    clock = Clock()
    f = Follower(tmp_path, settle=100.0, clock=clock)
    p = tmp_path / "step_00000001.safetensors"
    write_atomic(p, ckpt_bytes(1, 1))
    import os

    now = os.stat(p).st_mtime
    os.utime(p, (now + 3600, now + 3600))
    f.note_events({(type("C", (), {"name": "added"})(), str(p))})
    assert [c.step for c in f.poll().checkpoints] == [1]


def test_follower_broken_growing_file_not_reported(tmp_path):
    """A file still growing (truncated safetensors) is never reported; it is once it stays broken."""
    clock = Clock()
    f = Follower(tmp_path, settle=1.0, clock=clock)
    p = tmp_path / "step_00000001.safetensors"
    blob = ckpt_bytes(1, 1)
    p.write_bytes(blob[: len(blob) // 2])
    import os

    st = os.stat(p)
    os.utime(p, (st.st_mtime + 3600, st.st_mtime + 3600))
    for _ in range(3):
        r = f.poll()
        assert r.errors == [] and r.checkpoints == []
        clock.t += 0.4
    p.write_bytes(blob)  # finished
    os.utime(p, (st.st_mtime + 3601, st.st_mtime + 3601))
    clock.t += 0.1
    assert f.poll().errors == []
    clock.t += 1.1
    r = f.poll()
    assert r.errors == [] and [c.step for c in r.checkpoints] == [1]
    q = tmp_path / "step_00000002.safetensors"
    q.write_bytes(b"\xff" * 32)
    os.utime(q, (st.st_mtime + 3602, st.st_mtime + 3602))
    reported = []
    for _ in range(10):
        clock.t += 0.5
        reported += f.poll().errors
    assert len(reported) == 1 and "step_00000002.safetensors" in reported[0]


def test_slow_writer_helper(tmp_path):
    p = tmp_path / "x.bin"
    write_slowly(p, b"abcdefghij" * 10, chunks=4, pause=0.0)
    assert p.read_bytes() == b"abcdefghij" * 10
