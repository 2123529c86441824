"""SQLite cache of per-checkpoint results, one database per scanned folder.

Keyed by file identity (path, size, mtime_ns of every file of the checkpoint)
and the analysis settings, so an edited or replaced checkpoint is recomputed and
a scan after one new checkpoint computes only that one. A database that cannot
be read, or was written by another grokwatch version, is removed and rebuilt,
never trusted. The database runs in WAL mode with a busy timeout, so two scans
of one folder at once share it: readers never block, writers wait their turn.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from grokwatch.analyze import CheckpointResult
from grokwatch.checkpoints.discover import shard_files
from grokwatch.checkpoints.names import Checkpoint
from grokwatch.records import LayerRecord

__all__ = ["CACHE_NAME", "Cache", "SCHEMA", "identity"]

CACHE_NAME = ".grokwatch-cache.sqlite"
SCHEMA = 4  # 4: l2_norm, abs_weight_entropy, extra.train_metrics
BUSY_TIMEOUT_S = 60


def _version() -> str:
    from grokwatch import __version__

    return str(__version__)


def identity(ck: Checkpoint) -> str:
    """Path, size and modification time of every file the checkpoint reads."""
    parts = [ck.rel]
    files = list(ck.files)
    if ck.format == "sharded":
        files += shard_files(ck.files[0])
    elif ck.format == "dcp":  # a folder: its mtime misses shards rewritten in place
        files += sorted(ck.files[0].glob("*.distcp")) + [ck.files[0] / ".metadata"]
    adapter = ck.files[0].parent / "adapter_config.json"
    if ck.files[0].name.startswith("adapter_model") and adapter.exists():
        files.append(adapter)  # lora_alpha and r set the scale of every ΔW
    for f in files:
        st = os.stat(f)
        parts.append(f"{Path(f).name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


class _Stale(Exception):
    """The database was written by another schema or grokwatch version."""


class Cache:
    """get/put CheckpointResults; every failure degrades to a cache miss."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = self._open()

    def _open(self) -> sqlite3.Connection | None:
        for attempt in range(2):
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
                db.execute("PRAGMA journal_mode=WAL")
                with db:  # one write transaction: two scans opening a new cache at once do not race
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
                    stamp = dict(db.execute("SELECT k, v FROM meta").fetchall())
                    if stamp and (stamp.get("schema") != str(SCHEMA) or stamp.get("version") != _version()):
                        raise _Stale()
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (_version(),))
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS layers (ident TEXT, settings TEXT, layer TEXT, "
                        "record TEXT, PRIMARY KEY (ident, settings, layer))"
                    )
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS done (ident TEXT, settings TEXT, n INTEGER, "
                        "info TEXT, PRIMARY KEY (ident, settings))"
                    )
                db.execute("PRAGMA integrity_check").fetchone()
                return db
            except _Stale:
                db.close()
                if attempt == 0:
                    self._move_aside()
            except sqlite3.Error:
                if attempt == 0:
                    self._move_aside()
            except OSError:
                return None  # read-only folder: run without a cache
        return None

    def _move_aside(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                try:
                    p.unlink()
                except OSError:
                    pass

    def get(self, ident: str, settings: str) -> CheckpointResult | None:
        if self.db is None:
            return None
        try:
            row = self.db.execute(
                "SELECT n, info FROM done WHERE ident=? AND settings=?", (ident, settings)
            ).fetchone()
            if row is None:
                return None
            rows = self.db.execute(
                "SELECT record FROM layers WHERE ident=? AND settings=? ORDER BY rowid", (ident, settings)
            ).fetchall()
            if len(rows) != row[0]:
                return None
            info = json.loads(row[1])
            return CheckpointResult(
                info["rel"],
                info["step"],
                [LayerRecord.from_dict(json.loads(r[0])) for r in rows],
                notes=list(info["notes"]),
                step_unit=info["step_unit"],
            )
        except (sqlite3.Error, ValueError, TypeError, KeyError):
            return None

    def put(self, ident: str, settings: str, result: CheckpointResult) -> None:
        if self.db is None or result.error:
            return  # bad files are re-examined next time
        try:
            with self.db:
                self.db.execute("DELETE FROM layers WHERE ident=? AND settings=?", (ident, settings))
                self.db.executemany(
                    "INSERT INTO layers VALUES (?,?,?,?)",
                    [(ident, settings, r.layer, json.dumps(r.to_dict())) for r in result.records],
                )
                info = {
                    "rel": result.rel,
                    "step": result.step,
                    "step_unit": result.step_unit,
                    "notes": result.notes,
                }
                self.db.execute(
                    "INSERT OR REPLACE INTO done VALUES (?,?,?,?)",
                    (ident, settings, len(result.records), json.dumps(info)),
                )
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
