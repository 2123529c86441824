"""The `watch` loop: wait for events, find complete checkpoints, analyse, show, alert, end.

`follow_folder` is the library form of `grokwatch watch`; what is shown goes to a
`Sink` (the CLI's live view, plain lines or JSONL; `train --watch` uses the same),
so the loop itself prints nothing and is tested without a terminal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from grokwatch.monitor.alerts import Alerts
from grokwatch.monitor.follow import Follower, Waker
from grokwatch.monitor.live import CheckpointState, LiveRun
from grokwatch.settings import PhaseRules, Settings

__all__ = ["Outcome", "Sink", "follow_folder"]


class Sink(Protocol):
    def checkpoint(self, st: CheckpointState) -> None: ...
    def error(self, line: str) -> None: ...
    def status(self, text: str) -> None: ...
    def deleted(self, rel: str) -> None: ...


@dataclass
class Outcome:
    """Why the loop ended and what it saw."""

    reason: str  # "until", "idle", "exit-on", "stopped"
    run: LiveRun
    errors: list[str] = field(default_factory=list)
    alert: CheckpointState | None = None  # the checkpoint that triggered --exit-on


def follow_folder(
    root: str | Path,
    sink: Sink,
    settings: Settings | None = None,
    rules: PhaseRules | None = None,
    *,
    cache: bool | str | Path = True,
    alerts: Alerts | None = None,
    until: int | None = None,
    idle_exit: float | None = None,
    settle: float = 1.0,
    poll: float = 0.5,
    events: bool = True,
    stop: threading.Event | None = None,
) -> Outcome:
    """Follow `root` until --until, --idle-exit, --exit-on or `stop` (then one last look, no waiting).

    KeyboardInterrupt propagates (the CLI turns it into exit 0).
    """
    root = Path(root)
    run = LiveRun(root, settings or Settings(), rules or PhaseRules(), cache)
    follower = Follower(root, settle=settle)
    waker = Waker(root, poll=poll, events=events)
    alerts = alerts or Alerts()
    attach = getattr(sink, "attach", None)
    if attach is not None:
        attach(run)  # the live view reads the run's history on each refresh
    errors: list[str] = []
    last_new = time.monotonic()
    waiting = False
    try:
        while True:
            final = stop is not None and stop.is_set()
            if not root.exists():
                if not waiting:
                    sink.status(f"waiting for {root} to appear")
                    waiting = True
                if final:
                    return Outcome("stopped", run, errors)
            else:
                if waiting:
                    sink.status(f"{root} appeared; following it")
                    waiting = False
                ready = follower.poll(final=final)
                for line in ready.errors:
                    errors.append(line)
                    sink.error(line)
                for rel in ready.deleted:
                    run.mark_deleted(rel)
                    sink.deleted(rel)
                for ck in ready.checkpoints:
                    state, err = run.add(ck)
                    line = follower.finished(ck, err, final=final)
                    if line:
                        errors.append(line)
                        sink.error(line)
                    if state is None:
                        continue
                    last_new = time.monotonic()
                    sink.checkpoint(state)
                    if alerts.handle(state):
                        return Outcome("exit-on", run, errors, alert=state)
                    if until is not None and state.step is not None and state.step >= until:
                        return Outcome("until", run, errors)
                if final:
                    return Outcome("stopped", run, errors)
            if idle_exit is not None and time.monotonic() - last_new >= idle_exit:
                return Outcome("idle", run, errors)
            if root.exists():
                follower.note_events(waker.wait())
            else:
                waker.close()
                if stop is not None:
                    stop.wait(poll)
                else:
                    time.sleep(poll)
    finally:
        waker.close()
        run.close()
