"""Live monitoring of a run that is still training: `grokwatch watch` and `train --watch`.

follow.py  which checkpoints of a folder are new and complete (events, polling, stability)
live.py    incremental analysis with the cache and labels `scan`/`report` use
view.py    the rich live view, plain lines, JSONL
alerts.py  --exit-on, --on-alert, GitHub Actions annotations
run.py     the loop that ties them together (`follow_folder`)

The in-process callbacks (Lightning, Hugging Face, plain PyTorch) live in `grokwatch.callbacks`.
"""

from grokwatch.monitor.alerts import Alerts
from grokwatch.monitor.follow import Follower, Waker
from grokwatch.monitor.live import CheckpointState, LiveRun, level_of
from grokwatch.monitor.run import Outcome, Sink, follow_folder

__all__ = [
    "Alerts",
    "CheckpointState",
    "Follower",
    "LiveRun",
    "Outcome",
    "Sink",
    "Waker",
    "follow_folder",
    "level_of",
]
