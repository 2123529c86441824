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
  - norm growth: log10 Frobenius norm now minus `window` checkpoints ago;
  - norm fall: log10 Frobenius norm below its highest value so far (every
    layer, also those too small to vote with alpha).

Labels:
  1. the run's first checkpoint has no history: the threshold rule decides,
     and the evidence says so;
  2. pre-grokking until some voting layer's contraction reaches
     `onset_contraction` and some layer's norm has fallen `onset_shrink`
     below its peak; from then on the run is never pre-grokking again. Why
     both: memorizing also concentrates spectra (modular addition without
     weight decay: stable rank 65 -> 52 while test accuracy stays 0), but it
     grows every norm; generalizing sheds norm somewhere (the output layer of
     the MNIST MLP, the embedding in modular addition), as Omnigrok describes;
  3. after the onset, anti-grokking while some voting layer is over-correlated
     (smoothed alpha below `anti_alpha`, or `trap_min` correlation traps) while
     its Frobenius norm is still growing (by at least
     `anti_growth` decades over the last `window` checkpoints; with
     `anti_norm="model"` the whole model's norm, see `_model_growth`): over-correlation
     that keeps growing. With weight decay the norm shrinks late in a run and a
     layer can sit at a low alpha without a collapse (modular addition with
     weight decay reaches alpha ~1.3 at 100 % test accuracy; the MNIST control
     with weight decay 0.01 reaches alpha 1.6 and 3-4 traps in fc2 at 0.90). Or a layer whose norm fell (at least `onset_shrink`
     decades, as during grokking) has grown back `anti_rebound` decades from its
     low: after the test-accuracy peak of the MNIST runs without weight decay,
     the output layer, which shed two decades of norm while the run grokked,
     grows again as the collapse sets in;
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
from grokwatch.settings import NormScope, PhaseRules

__all__ = ["TrendLabeller"]


class _Layer:
    """The running state of one layer: reference stable rank, recent fits, lowest norm."""

    def __init__(self, window: int) -> None:
        self.ref_sr: float | None = None  # stable rank at the layer's first checkpoint
        self.ref_step: int | None = None
        self.alphas: deque[float] = deque(maxlen=window)
        self.log_norms: deque[float] = deque(maxlen=window + 1)
        self.max_log_norm = -math.inf
        self.min_since_max = math.inf  # lowest norm since the highest one

    def update(self, r: LayerRecord) -> None:
        if self.ref_sr is None and r.stable_rank:
            self.ref_sr, self.ref_step = r.stable_rank, r.step
        if r.alpha is not None and not r.weak_fit:
            self.alphas.append(r.alpha)
        if r.log_norm is not None:
            self.log_norms.append(r.log_norm)
            if r.log_norm > self.max_log_norm:
                self.max_log_norm = self.min_since_max = r.log_norm
            self.min_since_max = min(self.min_since_max, r.log_norm)

    def contraction(self, r: LayerRecord) -> float | None:
        if not self.ref_sr or not r.stable_rank:
            return None
        return math.log10(self.ref_sr / r.stable_rank)

    def shrink(self) -> float | None:
        """How far (decades) the Frobenius norm now sits below its highest value so far."""
        if not self.log_norms:
            return None
        return self.max_log_norm - self.log_norms[-1]

    def rebound(self, dip: float) -> float | None:
        """How far the norm has climbed back from its lowest point, for a layer that first fell `dip` decades."""
        if not self.log_norms or self.max_log_norm - self.min_since_max < dip:
            return None
        return self.log_norms[-1] - self.min_since_max

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
        self.onset_step: int | None = None

    def update(self, records: list[LayerRecord]) -> tuple[str, str]:
        rules = self.rules
        measured = [r for r in records if r.error is None]
        for r in measured:  # every layer's norm counts; alpha and stable rank only from voters
            self.layers.setdefault(r.layer, _Layer(rules.window)).update(r)
        voters = [r for r in measured if big_enough(r, rules)]
        self.seen += 1
        if self.seen == 1:
            phase, reason = label_checkpoint(records, rules)
            return phase, f"first checkpoint (threshold rule): {reason}"
        if not voters:
            return UNKNOWN, f"no layer with >= {rules.min_evals} eigenvalues"
        just_started = False
        if self.onset is None:
            pre = self._before_onset(voters, measured)
            if pre is not None:
                return PRE, pre
            self.onset_step, just_started = records[0].step, True
        phase, reason = self._after_onset(voters, measured)
        if phase == GROK:
            reason = f"onset: {self.onset}" if just_started else reason
        return phase, reason

    def _before_onset(self, voters: list[LayerRecord], measured: list[LayerRecord]) -> str | None:
        """None once grokking has started (and `self.onset` holds why), else the pre-grokking evidence."""
        rules = self.rules
        c, cr = max(
            ((self.layers[r.layer].contraction(r), r) for r in voters),
            key=lambda t: -math.inf if t[0] is None else t[0],
        )
        s, sr = max(
            ((self.layers[r.layer].shrink(), r) for r in measured),
            key=lambda t: -math.inf if t[0] is None else t[0],
        )
        c_ok = c is not None and c >= rules.onset_contraction
        s_ok = s is not None and s >= rules.onset_shrink
        c_text = "-" if c is None else f"{c:.3f}"
        s_text = "-" if s is None else f"{s:.3f}"
        if not (c_ok and s_ok):
            return (
                f"stable rank fall {c_text} {'>=' if c_ok else '<'} {rules.onset_contraction:g} ({cr.layer}); "
                f"norm fall {s_text} {'>=' if s_ok else '<'} {rules.onset_shrink:g} ({sr.layer})"
            )
        st = self.layers[cr.layer]
        self.onset = (
            f"{cr.layer} stable rank {st.ref_sr:.1f} -> {cr.stable_rank:.1f} ({c_text} >= "
            f"{rules.onset_contraction:g}); {sr.layer} norm {s_text} below its peak"
        )
        return None

    def _model_growth(self, measured: list[LayerRecord]) -> tuple[float, str] | None:
        """(growth, its evidence text) of the whole model's squared Frobenius norm, summed over
        the layers measured now, each taken now and at the start of its norm window.

        Why: with weight decay the layers of a transformer trade norm (the fused QKV and the
        unembedding grow while the embedding shrinks) around an equilibrium, so one layer's trend
        is often positive while nothing runs away; without weight decay the whole model grows.
        """
        now = then = 0.0
        n = 0
        for r in measured:
            norms = self.layers[r.layer].log_norms
            if len(norms) < 2:
                continue
            now, then = now + 10.0 ** norms[-1], then + 10.0 ** norms[0]
            n = max(n, len(norms) - 1)
        if not n or now <= 0.0 or then <= 0.0:
            return None
        g = math.log10(now / then)
        return g, f"model norm {g:+.3f} in {n} ckpts"

    def _after_onset(self, voters: list[LayerRecord], measured: list[LayerRecord]) -> tuple[str, str]:
        rules = self.rules
        why = []
        for r in measured:
            st = self.layers[r.layer]
            b = st.rebound(rules.onset_shrink)
            if b is not None and b >= rules.anti_rebound:
                why.append(
                    f"{r.layer} norm up {b:.3f} >= {rules.anti_rebound:g} from low "
                    f"(fell {st.max_log_norm - st.min_since_max:.3f})"
                )
        model = self._model_growth(measured) if rules.anti_norm == NormScope.model else None
        over: list[str] = []  # over-correlated layers while the model's norm grows: one norm said after them
        for r in voters:
            st = self.layers[r.layer]
            if rules.anti_norm == NormScope.model:
                g, growing = model or (None, "")
            else:
                g = st.growth()
                growing = "" if g is None else f"norm +{g:.3f} in {len(st.log_norms) - 1} ckpts"
            if g is None or g < rules.anti_growth:
                continue  # norm not growing: over-correlated or not, no alarm (weight decay)
            a = st.smoothed_alpha()
            found = []
            if a is not None and a < rules.anti_alpha:
                found.append(f"{r.layer} median alpha {a:.2f} < {rules.anti_alpha:g}")
            if r.n_traps is not None and r.n_traps >= rules.trap_min:
                found.append(f"{r.layer} {r.n_traps} traps")
            if model is not None:
                over.extend(found)
            else:
                why.extend(f"{f}, {growing}" for f in found)
        if over and model is not None:
            why.append(", ".join([*over, model[1]]))
        if why:
            return ANTI, "; ".join(why)
        since = "" if self.onset_step is None else f" since step {self.onset_step:,}"
        return GROK, f"grokking{since}; no over-correlated layer with a growing norm"
