"""Exit codes and the exceptions that map onto them.

The CLI is the only place that turns these into process exits; the library raises
or collects them so a notebook sees ordinary Python errors.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # findings at or above --fail-on
EXIT_USAGE = 2  # Typer/click usage errors
EXIT_BAD_INPUT = 3  # an unreadable, corrupt or unsafe checkpoint (the rest was still processed)
EXIT_NO_CHECKPOINTS = 4  # the folder is missing, empty, or holds no checkpoint
EXIT_INTERRUPTED = 130  # Ctrl-C (train saves a checkpoint first)


class GrokwatchError(Exception):
    """Base class: a problem grokwatch can explain in one line."""


class NoCheckpointsError(GrokwatchError):
    """The folder is missing or holds no checkpoint we can read."""


class CheckpointError(GrokwatchError):
    """One checkpoint file cannot be read safely; the message names file and reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ConfigMismatchError(GrokwatchError):
    """A training run folder holds checkpoints of a different configuration."""
