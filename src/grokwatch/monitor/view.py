"""What `watch` prints: a rich live view on a terminal, one plain line per checkpoint otherwise, or JSONL.

- `plain_line`: one line per new checkpoint (CI logs, `| tee`), greppable and stable.
- `jsonl_lines`: one JSON object per (checkpoint, layer), the fields of `scan --format json`.
- `LiveView`: a rich renderable re-drawn a few times a second (the "since last checkpoint"
  clock keeps moving while nothing arrives): the phase timeline so far, alpha per layer of
  the latest checkpoints, traps, the current label with its evidence, errors.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.monitor.live import CheckpointState, LiveRun
from grokwatch.report.model import step_range

__all__ = ["LiveView", "caveat", "jsonl_lines", "plain_line", "timeline"]

LATEST = 6  # checkpoints shown in the alpha table
MAX_LAYERS = 8  # alpha columns on the terminal


def _alpha(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def plain_line(st: CheckpointState) -> str:
    """`step 1,000  step_00001000.safetensors  grokking  traps 0  fc1.weight=3.21 ...  | reason`."""
    alphas = " ".join(f"{r.layer}={_alpha(r.alpha)}" for r in st.records if r.error is None)
    traps = f"traps {st.n_traps}" if any(r.n_traps is not None for r in st.records) else "traps -"
    cached = " (cached)" if st.cached else ""
    return f"{st.label}  {st.rel}  {st.phase}  {traps}  {alphas}  | {st.reason}{cached}"


def caveat(states: list[CheckpointState]) -> str | None:
    """`report`'s caveat for a model with attention layers (its phase labels are unvalidated), or None.

    Why `watch` says it too: its alerts (--exit-on, --on-alert) act on those labels."""
    from grokwatch.phases.labels import transformer_caveat

    return transformer_caveat(r.layer for s in states for r in s.records)


def jsonl_lines(st: CheckpointState) -> list[str]:
    return [json.dumps(r.to_dict(), sort_keys=False) for r in st.records]


@dataclass
class Range:
    phase: str
    first: int | None
    last: int | None
    count: int
    reason: str


def timeline(states: list[CheckpointState]) -> list[Range]:
    """Consecutive checkpoints with the same phase, as `report` groups them."""
    out: list[Range] = []
    for s in states:
        if out and out[-1].phase == s.phase:
            out[-1].last, out[-1].count = s.step, out[-1].count + 1
        else:
            out.append(Range(s.phase or "unknown", s.step, s.step, 1, s.reason))
    return out


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


@dataclass
class LiveView:
    """The terminal view; `__rich__` is re-evaluated on every refresh."""

    root: Path
    run: LiveRun | None = None  # attached by the loop once it starts
    status: str = "starting"
    last_arrival: float | None = None  # monotonic time of the last new checkpoint
    started: float = field(default_factory=time.monotonic)
    errors: list[str] = field(default_factory=list)

    def __rich__(self):
        from rich import box
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        from grokwatch.report.summary import PHASE_STYLE

        states = self.run.ordered if self.run is not None else []
        now = time.monotonic()
        since = (
            f"last checkpoint {_ago(now - self.last_arrival)} ago"
            if self.last_arrival is not None
            else f"no new checkpoint for {_ago(now - self.started)}"
        )
        head = Text.from_markup(
            f"[bold]grokwatch watch[/] {escape(str(self.root))}  ·  {len(states)} checkpoints  ·  "
            f"{since}  ·  {escape(self.status)}"
        )
        parts: list = [head]
        latest = states[-1] if states else None
        if latest is not None:
            st = PHASE_STYLE.get(latest.phase or "", "default")
            parts.append(
                Text.from_markup(
                    f"now: [{st}]{escape(latest.phase or '?')}[/] at {escape(latest.label)} "
                    f"(level {latest.level}) — {escape(latest.reason)}"
                )
            )
            tl = Table(title="phase timeline", box=box.SIMPLE_HEAD, title_justify="left")
            tl.add_column("steps", justify="right", no_wrap=True)
            tl.add_column("phase", no_wrap=True)
            tl.add_column("ckpts", justify="right")
            tl.add_column("evidence (first checkpoint of the range)")
            ranges = timeline(states)
            for rg in ranges[-10:]:
                style = PHASE_STYLE.get(rg.phase, "default")
                tl.add_row(
                    step_range(rg.first, rg.last), f"[{style}]{rg.phase}[/]", str(rg.count), escape(rg.reason)
                )
            if len(ranges) > 10:
                tl.caption = f"{len(ranges) - 10} earlier ranges not shown"
            parts.append(tl)
            layers: list[str] = []
            for s in states[-LATEST:]:
                for r in s.records:
                    if r.layer not in layers:
                        layers.append(r.layer)
            at = Table(
                title="alpha per layer (latest checkpoints)", box=box.SIMPLE_HEAD, title_justify="left"
            )
            at.add_column("step", justify="right", no_wrap=True)
            for name in layers[:MAX_LAYERS]:
                at.add_column(escape(name), justify="right")
            at.add_column("traps", justify="right")
            at.add_column("phase", no_wrap=True)
            for s in states[-LATEST:]:
                by = {r.layer: r for r in s.records}
                cells = []
                for name in layers[:MAX_LAYERS]:
                    r = by.get(name)
                    cells.append("" if r is None else _alpha(r.alpha) + ("*" if r.weak_fit else ""))
                style = PHASE_STYLE.get(s.phase or "", "default")  # "[]x[/]" would be bad markup
                label = s.label + (" (deleted)" if s.deleted else "")
                at.add_row(escape(label), *cells, str(s.n_traps), f"[{style}]{s.phase}[/]")
            if len(layers) > MAX_LAYERS:
                at.caption = f"{len(layers) - MAX_LAYERS} more layers not shown; * = weak fit"
            else:
                at.caption = "* = weak fit (n_tail < 10)"
            parts.append(at)
        if (line := caveat(states)) is not None:
            parts.append(Text(f"caveat: {line}", style="yellow"))
        for e in self.errors[-5:]:
            parts.append(Text(f"error: {e}", style="red"))
        return Group(*parts)
