"""Atomic file writes: a finished checkpoint, report or figure is never seen half-written.

Write to a hidden temp file in the same folder, fsync, then os.replace over the
target (atomic on POSIX within one filesystem). On any failure the temp file is
removed and the previous file, if any, is untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` whole or not at all.

    Any OSError (a full disk, a quota, a read-only folder) is re-raised with
    `filename` set to `path` itself, never to the hidden temp file, so the
    one-line error names the file the user asked for.
    """
    path = Path(path)
    blob = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would surprise users sharing runs
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path
