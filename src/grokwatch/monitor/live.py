"""Incremental analysis of a growing run: one checkpoint at a time, the same cache and labels as `scan`.

`LiveRun.add(ck)` looks the checkpoint up in the folder's cache (the one `scan`
and `report` use, keyed by file size and mtime and the settings), analyses it
only on a miss, stores the result, then labels *all* records so far with
`grokwatch.phases.label_records`, exactly as `scan_folder` does, so what the
live view says is what `report` says later. A half-written file is never
cached: the caller only hands over checkpoints the `Follower` judged complete,
and a failed analysis is never stored (`Cache.put` skips errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.analyze import CheckpointResult, analyze_checkpoints
from grokwatch.checkpoints import Checkpoint
from grokwatch.checkpoints.cache import Cache, identity
from grokwatch.phases import ANTI, label_records
from grokwatch.records import LayerRecord
from grokwatch.scan import default_cache_path
from grokwatch.settings import PhaseRules, Settings

__all__ = ["LEVELS", "CheckpointState", "LiveRun", "level_of"]

LEVELS = ("none", "trap", "anti-grokking")  # the levels of `report --fail-on`, lowest first


def level_of(phase: str | None, records: list[LayerRecord]) -> str:
    """A checkpoint's alert level, as `report --fail-on` counts it: anti-grokking > trap > none."""
    if phase == ANTI:
        return "anti-grokking"
    if sum(r.n_traps or 0 for r in records) > 0:
        return "trap"
    return "none"


def at_or_above(level: str, threshold: str) -> bool:
    return threshold != "none" and LEVELS.index(level) >= LEVELS.index(threshold)


@dataclass
class CheckpointState:
    """One analysed checkpoint as the live view shows it."""

    rel: str
    path: Path
    step: int | None
    records: list[LayerRecord]
    cached: bool  # came from the cache (nothing recomputed)
    deleted: bool = False  # removed from the folder since (e.g. save_total_limit rotation)

    @property
    def phase(self) -> str | None:
        return self.records[0].phase if self.records else None

    @property
    def reason(self) -> str:
        return (self.records[0].phase_reason or "") if self.records else ""

    @property
    def n_traps(self) -> int:
        return sum(r.n_traps or 0 for r in self.records)

    @property
    def level(self) -> str:
        return level_of(self.phase, self.records)

    @property
    def label(self) -> str:
        return self.rel if self.step is None else f"step {self.step:,}"

    @property
    def sort_key(self) -> tuple:
        return (self.step is None, self.step if self.step is not None else 0, self.rel)


@dataclass
class LiveRun:
    """Every checkpoint analysed so far, labelled together; the cache shared with `scan`."""

    root: Path
    settings: Settings = field(default_factory=Settings)
    rules: PhaseRules = field(default_factory=PhaseRules)
    cache: bool | str | Path = True
    checkpoints: dict[str, CheckpointState] = field(default_factory=dict)
    computed: int = 0  # checkpoints analysed now (not from the cache)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._store: Cache | None = None
        self._key = self.settings.cache_key()

    def _cache(self) -> Cache | None:
        if self._store is None and self.cache and self.root.exists():
            self._store = Cache(default_cache_path(self.root) if self.cache is True else Path(self.cache))
        return self._store

    def analyse(self, ck: Checkpoint) -> tuple[CheckpointResult, bool]:
        """(result, from_cache) for one checkpoint; an error result is never cached."""
        store = self._cache()
        ident = ""
        if store is not None:
            try:
                ident = identity(ck)
            except OSError:
                ident = ""
            hit = store.get(ident, self._key) if ident else None
            if hit is not None:
                return hit, True
        res = analyze_checkpoints([ck], self.settings)[0]
        if store is not None and ident and not res.error:
            try:
                same = identity(ck) == ident  # not rewritten while we read it
            except OSError:
                same = False
            if same:
                store.put(ident, self._key, res)
        return res, False

    def add(self, ck: Checkpoint) -> tuple[CheckpointState | None, str | None]:
        """Analyse (or look up) one checkpoint and relabel the history: (state, error line)."""
        res, cached = self.analyse(ck)
        if res.error:
            return None, res.error
        if not cached:
            self.computed += 1
        if res.step is not None:
            ck.step = res.step
        elif ck.step is None and res.records:
            ck.step = res.records[0].step  # a cached torch file: its step came with the records
        state = CheckpointState(ck.rel, Path(ck.path), ck.step, res.records, cached)
        self.checkpoints[ck.rel] = state
        self.relabel()
        return state, None

    def relabel(self) -> None:
        """`label_records` over every record so far, in step order (as `scan_folder` does)."""
        label_records(self.records, self.rules)

    def mark_deleted(self, rel: str) -> None:
        if rel in self.checkpoints:
            self.checkpoints[rel].deleted = True

    @property
    def ordered(self) -> list[CheckpointState]:
        return sorted(self.checkpoints.values(), key=lambda c: c.sort_key)

    @property
    def records(self) -> list[LayerRecord]:
        return [r for c in self.ordered for r in c.records]

    @property
    def latest(self) -> CheckpointState | None:
        states = self.ordered
        return states[-1] if states else None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
