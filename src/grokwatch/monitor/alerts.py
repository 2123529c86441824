"""Alerts of `watch`: exit at a level, run a command, GitHub Actions annotations.

- `--exit-on trap|anti-grokking`: the first checkpoint at or above that level ends
  `watch` with exit 1 (for a job supervisor).
- `--on-alert COMMAND`: run through the shell, synchronously (so alerts arrive in
  order and a command that stops the run has done so before the next checkpoint),
  for every checkpoint at or above `--alert-on`, with GROKWATCH_CHECKPOINT (path),
  GROKWATCH_STEP, GROKWATCH_LEVEL and GROKWATCH_REASON in its environment. A failing
  command is reported on stderr and `watch` goes on.
- Under GITHUB_ACTIONS=true: a `::warning::` line per anti-grokking checkpoint, the
  format `report` uses.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from grokwatch.monitor.live import CheckpointState, at_or_above
from grokwatch.report.summary import _escape_data, _escape_prop

__all__ = ["Alerts", "alert_env", "annotation"]


def alert_env(st: CheckpointState, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(
        GROKWATCH_CHECKPOINT=str(st.path),
        GROKWATCH_STEP="" if st.step is None else str(st.step),
        GROKWATCH_LEVEL=st.level,
        GROKWATCH_PHASE=st.phase or "",
        GROKWATCH_REASON=st.reason,
    )
    return env


def annotation(st: CheckpointState, name: str) -> str:
    title = _escape_prop(f"grokwatch: anti-grokking in {name}")
    return f"::warning title={title}::{_escape_data(f'{st.label} ({st.rel}): {st.reason}')}"


@dataclass
class Alerts:
    exit_on: str = "none"
    command: str | None = None
    alert_on: str = "anti-grokking"
    github: bool = False
    name: str = ""
    warn: Callable[[str], None] = print
    emit: Callable[[str], None] = print  # stdout lines (annotations)
    timeout: float = 300.0

    def handle(self, st: CheckpointState) -> bool:
        """Fire what this checkpoint triggers; True when `watch` must exit 1 now."""
        if self.github and st.phase == "anti-grokking":
            self.emit(annotation(st, self.name))
        if self.command and at_or_above(st.level, self.alert_on):
            try:
                proc = subprocess.run(self.command, shell=True, env=alert_env(st), timeout=self.timeout)
                if proc.returncode != 0:
                    self.warn(f"--on-alert command exited {proc.returncode} for {st.rel}")
            except (OSError, subprocess.TimeoutExpired) as e:
                self.warn(f"--on-alert command failed for {st.rel}: {e}")
        return at_or_above(st.level, self.exit_on)
