"""The SQLite cache under concurrency and across grokwatch versions."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import write_run

import grokwatch
from grokwatch.checkpoints import cache as cache_mod
from grokwatch.checkpoints.cache import CACHE_NAME, Cache


def _scan_cmd(folder: Path) -> list[str]:
    return [sys.executable, "-m", "grokwatch", "scan", str(folder), "-j", "1", "-f", "json"]


def test_two_scans_at_once_share_the_cache(tmp_path):
    d = write_run(tmp_path / "run", steps=tuple(range(1, 13)))
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    for _round in range(2):  # a fresh cache, then one both read at once
        procs = [
            subprocess.Popen(_scan_cmd(d), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (_out, err) in zip(procs, outs):
            assert p.returncode == 0, err.decode()
            assert err.decode().strip() == ""
        a, b = (json.loads(o) for o, _ in outs)
        assert a == b and len(a) == 36
    db = sqlite3.connect(d / CACHE_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM done").fetchone()[0] == 12  # no lost entries
    assert db.execute("SELECT count(*) FROM layers").fetchone()[0] == 36
    db.close()
    assert grokwatch.scan_folder(d, workers=1).computed == 0


def test_cache_of_another_version_is_ignored_not_misread(tmp_path, monkeypatch):
    d = write_run(tmp_path / "run", steps=(1, 2))
    first = grokwatch.scan_folder(d, workers=1)
    assert first.computed == 2
    # poison the cached numbers, then pretend a newer grokwatch reads them
    db = sqlite3.connect(d / CACHE_NAME)
    rows = db.execute("SELECT rowid, record FROM layers").fetchall()
    for rowid, rec in rows:
        r = json.loads(rec)
        r["alpha"] = 99.0
        db.execute("UPDATE layers SET record=? WHERE rowid=?", (json.dumps(r), rowid))
    db.commit()
    db.close()
    assert {r.alpha for r in grokwatch.scan_folder(d, workers=1)} == {99.0}  # same version: trusted
    monkeypatch.setattr(cache_mod, "_version", lambda: "99.0.0")
    again = grokwatch.scan_folder(d, workers=1)
    assert again.computed == 2
    assert [r.alpha for r in again] == [r.alpha for r in first]
    meta = dict(sqlite3.connect(d / CACHE_NAME).execute("SELECT k, v FROM meta").fetchall())
    assert meta["version"] == "99.0.0"


def test_cache_of_an_old_schema_is_rebuilt(tmp_path):
    p = tmp_path / CACHE_NAME
    db = sqlite3.connect(p)
    db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema', '2')")
    db.execute("CREATE TABLE done (ident TEXT, settings TEXT, n INTEGER, PRIMARY KEY (ident, settings))")
    db.execute("INSERT INTO done VALUES ('x', 'y', 0)")
    db.commit()
    db.close()
    c = Cache(p)
    assert c.db is not None and c.get("x", "y") is None
    assert dict(c.db.execute("SELECT k, v FROM meta").fetchall())["schema"] == str(cache_mod.SCHEMA)
    c.close()
