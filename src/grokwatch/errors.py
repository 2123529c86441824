"""Exit codes and the exceptions that map onto them.

The CLI (`grokwatch.cli.main`) is the only place that turns these into process
exits; the library raises or collects them so a notebook sees ordinary Python errors.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CheckpointError",
    "ConfigMismatchError",
    "DeviceError",
    "ExitCode",
    "GrokwatchError",
    "NoCheckpointsError",
    "SchedulerError",
]


class ExitCode(IntEnum):
    """Process exit codes of every grokwatch command (documented in the README and man pages)."""

    OK = 0
    FINDINGS = 1  # findings at or above --fail-on
    USAGE = (
        2  # Typer/click usage errors, unwritable output, a train config mismatch, --device cuda without CUDA
    )
    BAD_INPUT = 3  # an unreadable, corrupt or unsafe checkpoint (the rest was still processed)
    NO_CHECKPOINTS = 4  # the folder is missing, empty, or holds no checkpoint
    SCHEDULER = 5  # --scheduler: no Dask, the scheduler unreachable or lost, workers on another grokwatch
    INTERRUPTED = 130  # Ctrl-C (train saves a checkpoint first)


class GrokwatchError(Exception):
    """Base class: a problem grokwatch can explain in one line."""

    exit_code = ExitCode.USAGE


class NoCheckpointsError(GrokwatchError):
    """The folder is missing or holds no checkpoint we can read."""

    exit_code = ExitCode.NO_CHECKPOINTS


class CheckpointError(GrokwatchError):
    """One checkpoint file cannot be read safely; the message names file and reason."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ConfigMismatchError(GrokwatchError):
    """A training run folder holds checkpoints of a different configuration."""

    exit_code = ExitCode.USAGE


class SchedulerError(GrokwatchError):
    """The Dask cluster cannot be used: the extra is not installed, its scheduler does not answer,
    or its workers run another grokwatch version.

    Its own exit code, because a script should retry it (what finished is cached), not fix its input.
    """

    exit_code = ExitCode.SCHEDULER


class DeviceError(GrokwatchError):
    """A requested device is not there (`--device cuda` without CUDA): a usage error, before any work."""

    exit_code = ExitCode.USAGE
