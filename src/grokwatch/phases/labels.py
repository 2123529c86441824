"""The phase names, shared by every labeller, the report and the accuracy phases."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ANTI", "GROK", "ORDER", "PHASES", "PRE", "TRANSFORMER_CAVEAT", "UNKNOWN", "transformer_caveat"]

PRE, GROK, ANTI, UNKNOWN = "pre-grokking", "grokking", "anti-grokking", "unknown"
PHASES = (PRE, GROK, ANTI)
ORDER = {UNKNOWN: -1, PRE: 0, GROK: 1, ANTI: 2}

# Where the labels are known not to hold, said wherever a transformer's labels are shown. The
# figures are those of docs/phases.md ("Seven runs, two tasks; transformers fail"): the rules were
# fitted and scored on MLP runs only.
TRANSFORMER_CAVEAT = (
    "attention layers: the phase rules were measured on MLP runs only; on a transformer that "
    "generalized without collapsing (Power et al., (a+b) mod 97, weight decay 1) the trend rule "
    "labelled 29 of 80 checkpoints anti-grokking while test accuracy stayed 1.0, so read "
    "anti-grokking here as unvalidated"
)


def transformer_caveat(layers: Iterable[str]) -> str | None:
    """The caveat line for a model whose analysed layers include attention layers, else None
    (`report`'s "caveat" fact and `watch`'s one-time note say the same)."""
    from grokwatch.checkpoints.layers import is_attention

    n = sum(1 for name in set(layers) if is_attention(name))
    return f"{n} {TRANSFORMER_CAVEAT}" if n else None
