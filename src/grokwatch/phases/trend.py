"""The trend rule: a label from each layer's trajectory over the run, not from one checkpoint.

Why: on real runs a single checkpoint's alpha does not separate the phases (fc1's
free-x_min fit jumps 7 -> 13 -> 10 while the tail holds 10-18 eigenvalues, and a
layer's absolute alpha differs between seeds and recipes), but every layer's
spectrum moves smoothly and in one direction as correlations form. The rule
reads that movement, causally: the label of checkpoint t uses checkpoints <= t.

Features of each voting layer (>= `min_evals` eigenvalues, no error), per checkpoint:
  - contraction: log10(stable rank at the run's first checkpoint / stable rank
    now). The stable rank sum(lambda)/lambda_max falls as a few directions come
    to dominate the layer; it is computed from every eigenvalue, so it has none
    of the fit's jumps;
  - smoothed alpha: the median of the layer's last `window` trusted fits
    (n_tail >= 10), so one outlying fit cannot flip a label;
  - norm growth: log10 Frobenius norm now minus `window` checkpoints ago.

Labels:
  1. the run's first checkpoint has no history: the threshold rule decides,
     and the evidence says so;
  2. pre-grokking until some voting layer's contraction reaches
     `onset_contraction`; from then on the run is never pre-grokking again;
  3. after the onset, anti-grokking while some voting layer's smoothed alpha is
     below `anti_alpha` while its Frobenius norm is still growing (by at least
     `anti_growth` decades over the last `window` checkpoints): over-correlation
     that keeps growing. With weight decay the norm shrinks late in a run and a
     layer can sit at a low alpha without a collapse (modular addition with
     weight decay reaches alpha ~1.3 at 100 % test accuracy). Or a layer holds
     `trap_min` traps;
  4. grokking otherwise (a layer whose alpha recovers returns to grokking).
Thresholds are `PhaseRules` fields; how they were chosen and how well they agree
with accuracy phases on real runs is in docs/scan.md.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median

from grokwatch.phases.labels import ANTI, GROK, PRE, UNKNOWN
from grokwatch.phases.threshold import big_enough, label_checkpoint
from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules

__all__ = ["TrendLabeller"]


class _Layer:
    """The running state of one layer: reference stable rank, recent fits, lowest norm."""

    def __init__(self, window: int) -> None:
        self.ref_sr: float | None = None
        self.ref_step: int | None = None
        self.alphas: deque[float] = deque(maxlen=window)
        self.log_norms: deque[float] = deque(maxlen=window + 1)

    def update(self, r: LayerRecord) -> None:
        if self.ref_sr is None and r.stable_rank:
            self.ref_sr, self.ref_step = r.stable_rank, r.step
        if r.alpha is not None and not r.weak_fit:
            self.alphas.append(r.alpha)
        if r.log_norm is not None:
            self.log_norms.append(r.log_norm)

    def contraction(self, r: LayerRecord) -> float | None:
        if not self.ref_sr or not r.stable_rank:
            return None
        return math.log10(self.ref_sr / r.stable_rank)

    def smoothed_alpha(self) -> float | None:
        return median(self.alphas) if self.alphas else None

    def growth(self) -> float | None:
        """log10 Frobenius norm now minus `window` checkpoints ago (fewer early in the run)."""
        if len(self.log_norms) < 2:
            return None
        return self.log_norms[-1] - self.log_norms[0]


class TrendLabeller:
    """Feed checkpoints in step order with `update`; each call returns (phase, reason) for that one.

    labeller = TrendLabeller(PhaseRules())
    labels = [labeller.update(layers) for layers in checkpoints]   # layers: one checkpoint's records
    """

    def __init__(self, rules: PhaseRules = PhaseRules()) -> None:
        self.rules = rules
        self.layers: dict[str, _Layer] = {}
        self.seen = 0
        self.onset: str | None = None  # the evidence of the grokking onset, once reached

    def update(self, records: list[LayerRecord]) -> tuple[str, str]:
        rules = self.rules
        voters = [r for r in records if big_enough(r, rules)]
        for r in voters:
            self.layers.setdefault(r.layer, _Layer(rules.window)).update(r)
        self.seen += 1
        if self.seen == 1:
            phase, reason = label_checkpoint(records, rules)
            return phase, f"first checkpoint, no history yet (threshold rule): {reason}"
        if not voters:
            return UNKNOWN, f"no layer with >= {rules.min_evals} eigenvalues"

        if self.onset is None:
            best = max(
                ((self.layers[r.layer].contraction(r), r) for r in voters if r.stable_rank),
                key=lambda t: -math.inf if t[0] is None else t[0],
                default=(None, None),
            )
            c, r = best
            if c is None or c < rules.onset_contraction:
                shown = "-" if c is None else f"{c:.3f}"
                return PRE, (
                    f"stable rank near its start: largest contraction {shown} decades "
                    f"< {rules.onset_contraction:g}" + (f" ({r.layer})" if r is not None else "")
                )
            st = self.layers[r.layer]
            self.onset = (
                f"{r.layer} stable rank {st.ref_sr:.1f} -> {r.stable_rank:.1f} "
                f"({c:.3f} decades >= {rules.onset_contraction:g})"
            )

        why = []
        for r in voters:
            st = self.layers[r.layer]
            a, g = st.smoothed_alpha(), st.growth()
            if a is not None and a < rules.anti_alpha and g is not None and g >= rules.anti_growth:
                why.append(
                    f"{r.layer} median alpha {a:.2f} < {rules.anti_alpha:g} of the last "
                    f"{len(st.alphas)} fits, norm +{g:.3f} decades >= {rules.anti_growth:g} "
                    f"over the last {len(st.log_norms) - 1} checkpoints"
                )
            if r.n_traps is not None and r.n_traps >= rules.trap_min:
                why.append(f"{r.layer} {r.n_traps} traps >= {rules.trap_min}")
        if why:
            return ANTI, "; ".join(why)
        return GROK, f"since the onset ({self.onset}); no layer over-correlated and growing"
