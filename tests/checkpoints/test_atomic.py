"""Atomic writes keep the old file when writing fails and leave no temp files."""

from __future__ import annotations

import pytest

from grokwatch.checkpoints.atomic import write_atomic


def test_replaces_and_cleans_up(tmp_path):
    p = tmp_path / "out.txt"
    write_atomic(p, "one")
    write_atomic(p, b"two")
    assert p.read_text() == "two" and [x.name for x in tmp_path.iterdir()] == ["out.txt"]
    assert (p.stat().st_mode & 0o777) == 0o644


def test_failure_keeps_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "out.txt"
    write_atomic(p, "old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr("grokwatch.checkpoints.atomic.os.replace", boom)
    with pytest.raises(OSError):
        write_atomic(p, "new")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["out.txt"]
