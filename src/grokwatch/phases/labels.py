"""The phase names, shared by every labeller, the report and the accuracy phases."""

from __future__ import annotations

__all__ = ["ANTI", "GROK", "ORDER", "PHASES", "PRE", "UNKNOWN"]

PRE, GROK, ANTI, UNKNOWN = "pre-grokking", "grokking", "anti-grokking", "unknown"
PHASES = (PRE, GROK, ANTI)
ORDER = {UNKNOWN: -1, PRE: 0, GROK: 1, ANTI: 2}
