"""Following a folder that a training job writes: which checkpoints are new and complete.

`Follower.poll()` discovers the folder (every format `scan` reads) and returns the
checkpoints that are ready to analyse. A checkpoint is ready when

- its files' size and mtime have not changed for `settle` seconds (a slow,
  non-atomic writer: HF Trainer and Lightning write in place), or
- a filesystem event says it appeared (a rename, as `grokwatch train` writes)
  and no write to it was seen since: then it is tried at once.

A file is never reported as broken while it may still be written: a failure
counts only when the same size and mtime fail again `settle` seconds later (a
fast-path failure just falls back to waiting). A file that stays broken is
reported once; a new version of it (new size or mtime) is tried again.
`Waker` sleeps until the next filesystem event (`watchfiles`) or the poll
interval, whichever comes first, and falls back to plain polling where events
are unavailable (a missing package, a network filesystem, exhausted inotify
watches).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.checkpoints import Checkpoint, discover
from grokwatch.checkpoints.cache import identity

__all__ = ["Follower", "Ready", "Waker"]


@dataclass
class Ready:
    """One poll's outcome: checkpoints to analyse and discovery errors to report (each once)."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # rels of analysed checkpoints that disappeared


@dataclass
class _State:
    sig: str  # size and mtime of every file (cache.identity)
    since: float  # monotonic time this signature was first seen (or the files' age at startup)
    renamed: bool = False  # appeared by an event, no write seen since
    done: bool = False  # analysed (reported) with this signature
    failed_at: float | None = None  # first failure of this signature
    retry_at: float = 0.0
    reported: bool = False  # its failure was reported


class Follower:
    """Tracks every checkpoint of a folder across polls; see the module docstring for the rules."""

    def __init__(self, root: str | Path, settle: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.root = Path(root)
        self.settle = settle
        self.clock = clock
        self.states: dict[str, _State] = {}
        self.bad: dict[str, _State] = {}  # discovery errors by file path
        self.added: set[str] = set()  # paths announced by an event and not written since

    def note_events(self, changes: set[tuple[object, str]]) -> None:
        """Record watchfiles changes: (Change, path)."""
        for change, path in changes:
            name = getattr(change, "name", str(change))
            if name == "added":
                self.added.add(os.path.abspath(path))
            elif name in ("modified", "deleted"):
                self.added.discard(os.path.abspath(path))

    def _signature(self, ck: Checkpoint) -> str | None:
        try:
            return identity(ck)
        except OSError:
            return None  # vanished between discovery and stat

    def _age(self, ck: Checkpoint) -> float:
        """Seconds since the newest of its files was written (from mtimes)."""
        try:
            newest = max(os.stat(f).st_mtime for f in [*ck.files, ck.path])
        except OSError:
            return 0.0
        return max(0.0, time.time() - newest)

    def poll(self, final: bool = False) -> Ready:
        """Discover the folder; `final` (the writer has finished) skips the waiting."""
        out = Ready()
        if not self.root.exists():
            return out
        now = self.clock()
        checkpoints, bad = discover(self.root)
        seen: set[str] = set()
        for ck in checkpoints:
            sig = self._signature(ck)
            if sig is None:
                continue
            seen.add(ck.rel)
            st = self.states.get(ck.rel)
            paths = {os.path.abspath(p) for p in [ck.path, *ck.files]}
            if st is None or st.sig != sig:
                st = _State(sig=sig, since=now - self._age(ck) if st is None else now)
                st.renamed = bool(paths & self.added)
                self.states[ck.rel] = st
            if st.done or st.reported or (now < st.retry_at and not final):
                continue
            if final or st.renamed or now - st.since >= self.settle:
                out.checkpoints.append(ck)
        for rel in [r for r in self.states if r not in seen]:
            if self.states.pop(rel).done:
                out.deleted.append(rel)
        bad_seen: set[str] = set()
        for e in bad:
            try:
                s = os.stat(e.path)
            except OSError:
                continue
            sig = f"{s.st_size}:{s.st_mtime_ns}"
            bad_seen.add(e.path)
            st = self.bad.get(e.path)
            if st is None or st.sig != sig:
                st = _State(sig=sig, since=now - max(0.0, time.time() - s.st_mtime) if st is None else now)
                self.bad[e.path] = st
            if final and not st.reported:
                st.reported = True
                out.errors.append(str(e))
                continue
            if st.reported or now - st.since < self.settle:
                continue  # may still be written
            if st.failed_at is None:
                st.failed_at = now
            if now - st.failed_at >= self.settle or now - st.since >= 2 * self.settle:
                st.reported = True
                out.errors.append(str(e))
        for p in [p for p in self.bad if p not in bad_seen]:
            del self.bad[p]
        return out

    def finished(self, ck: Checkpoint, error: str | None, final: bool = False) -> str | None:
        """Record an analysis outcome; returns the error line to report now (once), or None."""
        st = self.states.get(ck.rel)
        if st is None:
            return error
        now = self.clock()
        if error is None:
            st.done = True
            return None
        if final:
            st.reported = True
            return error
        sig = self._signature(ck)
        if sig != st.sig or st.renamed:
            # Still being written (or the fast path was wrong): wait for stable files, silently.
            if sig is not None and sig != st.sig:
                st.sig, st.since = sig, now
            st.renamed = False
            st.retry_at = now + self.settle
            return None
        if st.failed_at is None:
            st.failed_at = now
            st.retry_at = now + self.settle
            return None
        st.reported = True
        return error


class Waker:
    """Sleep until filesystem events or `poll` seconds; returns the changes seen (maybe none)."""

    def __init__(self, root: str | Path, poll: float = 0.5, events: bool = True):
        self.root = Path(root)
        self.poll = poll
        self.events = events
        self._gen = None
        self.mode = "polling"

    def _start(self) -> None:
        if not self.events or self._gen is not None or not self.root.is_dir():
            return
        try:
            import watchfiles

            self._gen = watchfiles.watch(
                self.root,
                watch_filter=None,
                debounce=max(50, int(self.poll * 1000)),
                step=50,
                rust_timeout=max(50, int(self.poll * 1000)),
                yield_on_timeout=True,
                raise_interrupt=True,
            )
            self.mode = "events"
        except (ImportError, OSError, RuntimeError):
            self._gen, self.mode = None, "polling"

    def wait(self) -> set:
        self._start()
        if self._gen is None:
            time.sleep(self.poll)
            return set()
        try:
            return next(self._gen)
        except KeyboardInterrupt:
            raise
        except (StopIteration, OSError, RuntimeError, Exception):  # noqa: BLE001 - folder deleted, watch lost
            self.close()
            time.sleep(self.poll)
            return set()

    def close(self) -> None:
        if self._gen is not None:
            try:
                self._gen.close()
            except Exception:  # noqa: BLE001
                pass
        self._gen = None
