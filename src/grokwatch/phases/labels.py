"""The phase names, shared by every labeller, the report and the accuracy phases."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ANTI", "GROK", "ORDER", "PHASES", "PRE", "TRANSFORMER_CAVEAT", "UNKNOWN", "transformer_caveat"]

PRE, GROK, ANTI, UNKNOWN = "pre-grokking", "grokking", "anti-grokking", "unknown"
PHASES = (PRE, GROK, ANTI)
ORDER = {UNKNOWN: -1, PRE: 0, GROK: 1, ANTI: 2}

# Where the labels are known not to hold, said wherever a transformer's labels are shown. The
# figures are those of docs/phases.md ("Transformers").
TRANSFORMER_CAVEAT = (
    "attention layers: no transformer run measured by grokwatch collapses, so an anti-grokking label "
    "here is unvalidated; on 8 transformer runs that generalized or memorized without collapsing, "
    "the trend rule raised 6 false alarms in 560 checkpoints (2 in the 3 runs held out from tuning)"
)


def transformer_caveat(layers: Iterable[str]) -> str | None:
    """The caveat line for a model whose analysed layers include attention layers, else None
    (`report`'s "caveat" fact and `watch`'s one-time note say the same)."""
    from grokwatch.checkpoints.layers import is_attention

    n = sum(1 for name in set(layers) if is_attention(name))
    return f"{n} {TRANSFORMER_CAVEAT}" if n else None
