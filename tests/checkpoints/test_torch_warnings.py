"""A torch file saved with pickle protocol 4 gives one grokwatch error line, no torch UserWarning."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import write_run
from typer.testing import CliRunner

from grokwatch.checkpoints.torch_file import read_torch_state
from grokwatch.cli import app
from grokwatch.errors import CheckpointError


def _protocol4(path):
    torch.save({"fc1.weight": torch.randn(20, 30)}, path, pickle_protocol=4)
    return path


def test_no_pickle_protocol_warning(tmp_path):
    path = _protocol4(tmp_path / "step_5.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError):
            read_torch_state(path)
    assert not [w for w in caught if "pickle protocol" in str(w.message)]


def test_scan_stderr_is_one_line_per_bad_file(tmp_path):
    run = write_run(tmp_path / "run", steps=(10,))
    _protocol4(run / "step_00000005.pt")
    r = CliRunner().invoke(app, ["scan", str(run), "-j", "1", "--no-cache"], env={"NO_COLOR": "1"})
    assert r.exit_code == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokwatch: error: ") and "step_00000005.pt" in lines[0]
