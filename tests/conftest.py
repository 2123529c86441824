"""Shared fixtures: checkpoint folders generated on the fly (seeded, small)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")
