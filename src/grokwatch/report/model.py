"""`grokwatch report` as a library: a report model built from a ScanResult.

    from grokwatch.report import build_report, render_terminal, to_markdown
    rep = build_report(scan_folder("runs/mnist", Settings(traps=True)))
    print(to_markdown(rep))

The model holds what a person reads and what a CI job acts on:
  - the phase timeline: runs of consecutive checkpoints with the same spectral
    phase (pre-grokking / grokking / anti-grokking / unknown), with step ranges;
  - the early warning, which follows the phase rule: under the trend rule (the
    default) the first checkpoint labelled anti-grokking; under the paper's and
    the threshold rules their precursor, the first checkpoint with any trusted
    layer alpha below `rules.alpha_low` (2) or any correlation trap. That
    precursor is also kept under the trend rule (`over_correlated`, with a
    count) as a fact, not a warning: on the measured runs it is on from the
    start of every weight-decay-free MNIST run (one trap per layer) and
    throughout weight-decay runs that generalize (docs/phases.md);
  - where checkpoints carry train/test accuracy metadata: the peak test
    accuracy, the first later checkpoint where test accuracy fell `acc_drop`
    or more below it, the accuracy phase of every checkpoint (`phases.
    accuracy_phases`), how often the spectral phase agrees with it, and how
    many steps before the drop the spectral warning came;
  - the level of the run for `--fail-on`: anti-grokking > trap > none.
Rendering: `render_terminal` (rich), `to_markdown` (for $GITHUB_STEP_SUMMARY),
`annotations` (GitHub `::warning::` lines) live in `report.summary`; the HTML in `report.html`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.checkpoints.layers import is_attention
from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN, accuracy_phases, trusted
from grokwatch.phases.accuracy import first_drop_index, peak_index
from grokwatch.phases.labels import transformer_caveat
from grokwatch.phases.score import score_run
from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules, Rule

__all__ = [
    "Agreement",
    "CheckpointView",
    "LEVELS",
    "MAX_RANGES",
    "PHASES",
    "PhaseRange",
    "Report",
    "build_report",
    "facts",
    "lead_text",
    "step_range",
]

LEVELS = ("none", "trap", "anti-grokking")  # --fail-on levels, lowest first
MAX_RANGES = 30  # timeline rows on the terminal and in Markdown (the HTML has every checkpoint)
PHASES = (PRE, GROK, ANTI, UNKNOWN)


@dataclass
class CheckpointView:
    """One checkpoint, as the report shows it."""

    rel: str
    step: int | None
    phase: str
    reason: str
    records: list[LayerRecord]
    train_acc: float | None = None
    test_acc: float | None = None
    acc_phase: str | None = None  # from accuracy metadata, when present
    # why this checkpoint is over-correlated (a trusted alpha < alpha_low, or a trap), if it is: the
    # early warning of the paper's and the threshold rules, a fact under the trend rule
    warning: str | None = None

    @property
    def n_traps(self) -> int | None:
        counts = [r.n_traps for r in self.records if r.n_traps is not None]
        return sum(counts) if counts else None

    @property
    def label(self) -> str:
        return self.rel if self.step is None else f"step {self.step:,}"


@dataclass
class PhaseRange:
    phase: str
    start: int  # index of the first checkpoint in Report.checkpoints
    end: int  # index of the last one (inclusive)
    first_step: int | None
    last_step: int | None
    reason: str  # evidence of the first checkpoint in the range

    @property
    def count(self) -> int:
        return self.end - self.start + 1

    @property
    def steps(self) -> str:
        return step_range(self.first_step, self.last_step)


@dataclass
class Agreement:
    """Spectral labels against accuracy phases (`grokwatch.phases.score`; unknown counts as a miss)."""

    compared: int  # checkpoints with an accuracy phase
    agree: int
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (spectral, accuracy) -> n
    balanced: float = 0.0  # mean over the accuracy phases present of the share labelled right
    false_alarms: int = 0  # anti-grokking while test accuracy is within acc_drop of its running peak

    @property
    def fraction(self) -> float:
        return self.agree / self.compared if self.compared else 0.0


@dataclass
class Report:
    name: str  # the folder's name (never an absolute path: the HTML must be byte-stable)
    settings: object  # analyze.Settings
    rules: PhaseRules
    acc_drop: float
    layers: list[str]
    checkpoints: list[CheckpointView]
    records: list[LayerRecord]
    errors: list[str]
    timeline: list[PhaseRange]
    warning: CheckpointView | None  # the early warning under `rules.rule` (see the module docstring)
    first_anti: CheckpointView | None
    onset: CheckpointView | None  # first checkpoint labelled grokking
    best: CheckpointView | None  # peak-like: the last grokking checkpoint before the first anti-grokking one
    peak: CheckpointView | None
    drop: CheckpointView | None
    agreement: Agreement | None
    traps_computed: bool
    # the first checkpoint with a trusted alpha < alpha_low or a trap, and how many checkpoints have one
    over_correlated: CheckpointView | None = None
    n_over_correlated: int = 0

    @property
    def attention_layers(self) -> list[str]:
        """The analysed layers of attention blocks: a transformer, where the phase rules are unvalidated."""
        return [name for name in self.layers if is_attention(name)]

    @property
    def warning_is_first_anti(self) -> bool:
        """True when the early warning is the first anti-grokking label (the trend rule)."""
        return self.rules.rule == Rule.trend

    @property
    def has_accuracy(self) -> bool:
        return self.peak is not None

    @property
    def steps(self) -> list[int]:
        return [c.step for c in self.checkpoints if c.step is not None]

    @property
    def level(self) -> str:
        """The highest --fail-on level the run reaches."""
        if any(c.phase == ANTI for c in self.checkpoints):
            return "anti-grokking"
        if any((c.n_traps or 0) > 0 for c in self.checkpoints):
            return "trap"
        return "none"

    def at_or_above(self, level: str) -> list[CheckpointView]:
        """Checkpoints at or above a --fail-on level (none: no checkpoint ever fails)."""
        if level == "anti-grokking":
            return [c for c in self.checkpoints if c.phase == ANTI]
        if level == "trap":
            return [c for c in self.checkpoints if c.phase == ANTI or (c.n_traps or 0) > 0]
        return []

    def lead(self, view: CheckpointView | None) -> int | None:
        """Steps from `view` to the test-accuracy drop (positive: the view came first)."""
        if view is None or self.drop is None or view.step is None or self.drop.step is None:
            return None
        return self.drop.step - view.step


def step_range(a: int | None, b: int | None) -> str:
    if a is None or b is None:
        return "?"
    return f"{a:,}" if a == b else f"{a:,} – {b:,}"


def _warning(records: list[LayerRecord], rules: PhaseRules) -> str | None:
    why = [
        f"{r.layer} alpha={r.alpha:.2f} < {rules.alpha_low:g}"
        for r in records
        if trusted(r, rules) and r.alpha < rules.alpha_low
    ]
    why += [
        f"{r.layer} {r.n_traps} trap{'s' if r.n_traps != 1 else ''}"
        for r in records
        if r.n_traps is not None and r.n_traps > 0
    ]
    return "; ".join(why) or None


def _best(views: list[CheckpointView]) -> CheckpointView | None:
    """The spectra's pick of the best checkpoint: the last one labelled grokking before any anti-grokking."""
    best = None
    for v in views:
        if v.phase == ANTI:
            break
        if v.phase == GROK:
            best = v
    return best


def _timeline(views: list[CheckpointView]) -> list[PhaseRange]:
    out: list[PhaseRange] = []
    for i, v in enumerate(views):
        if out and out[-1].phase == v.phase:
            out[-1].end, out[-1].last_step = i, v.step
        else:
            out.append(PhaseRange(v.phase, i, i, v.step, v.step, v.reason))
    return out


def build_report(
    result, rules: PhaseRules | None = None, acc_drop: float = 0.03, name: str | None = None
) -> Report:
    """The report model of a ScanResult (records already phase-labelled by scan_folder).

    `rules` default to the ones the result was labelled with (`result.rules`), so
    the early warning and the labels cannot use different thresholds.

        rep = build_report(scan_folder("runs/mnist", Settings(traps=True)))
        rep.level, rep.first_anti, rep.agreement
    """
    rules = rules or getattr(result, "rules", None) or PhaseRules()
    groups: dict[str, list[LayerRecord]] = {}
    layers: dict[str, None] = {}
    for r in result.records:
        groups.setdefault(r.checkpoint, []).append(r)
        layers.setdefault(r.layer, None)
    views = []
    for ck in sorted(result.checkpoints, key=lambda c: c.sort_key):  # never trust the caller's order
        recs = groups.get(ck.rel)
        if not recs:
            continue
        first = recs[0]
        views.append(
            CheckpointView(
                ck.rel,
                ck.step,
                first.phase or UNKNOWN,
                first.phase_reason or "",
                recs,
                first.train_acc,
                first.test_acc,
                warning=_warning(recs, rules),
            )
        )
    # accuracy phases over the checkpoints that record test accuracy (phases.accuracy's definition)
    acc = [v for v in views if v.test_acc is not None]
    peak = drop = None
    agreement = None
    if acc:
        steps = [v.step or 0 for v in acc]
        train = [v.train_acc if v.train_acc is not None else float("nan") for v in acc]
        test = [v.test_acc for v in acc]
        for v, p in zip(acc, accuracy_phases(steps, train, test, drop=acc_drop)):
            v.acc_phase = p
        peak = acc[peak_index(test)]
        d = first_drop_index(train, test, acc_drop)
        drop = acc[d] if d is not None else None
        sc = score_run(name or "", steps, [v.phase for v in acc], train, test, drop=acc_drop)
        agreement = Agreement(sc.n, sc.agree, sc.confusion, sc.balanced, sc.false_alarms)
    first_anti = next((v for v in views if v.phase == ANTI), None)
    over_correlated = next((v for v in views if v.warning), None)
    return Report(
        name=name or Path(result.root).resolve().name or str(result.root),
        settings=result.settings,
        rules=rules,
        acc_drop=acc_drop,
        layers=list(layers),
        checkpoints=views,
        records=list(result.records),
        errors=list(result.errors),
        timeline=_timeline(views),
        # The early warning follows the rule the labels came from. The trend rule was fitted to say
        # anti-grokking as early as the accuracy drop allows without false alarms, so its first such
        # label is the warning; a trusted alpha < 2 or a trap is on from the first checkpoints of
        # real runs that never collapse (docs/phases.md), which would make "early warning" mean
        # "always". For the paper's and the threshold rules, whose anti-grokking is alpha < 2 (or
        # trap_min traps), one such layer is their own precursor.
        warning=first_anti if rules.rule == Rule.trend else over_correlated,
        first_anti=first_anti,
        onset=next((v for v in views if v.phase == GROK), None),
        best=_best(views),
        peak=peak,
        drop=drop,
        agreement=agreement,
        traps_computed=any(r.n_traps is not None for r in result.records),
        over_correlated=over_correlated,
        n_over_correlated=sum(1 for v in views if v.warning),
    )


# ---------------------------------------------------------------- sentences shared by all renderings


def lead_text(rep: Report, view: CheckpointView | None) -> str:
    n = rep.lead(view)
    if n is None:
        return ""
    if n > 0:
        return f"{n:,} steps before the test-accuracy drop"
    if n == 0:
        return "at the test-accuracy drop"
    return f"{-n:,} steps after the test-accuracy drop"


def facts(rep: Report) -> list[tuple[str, str]]:
    """(label, text) lines of the summary: the same facts in terminal, Markdown and HTML."""
    steps = rep.steps
    out = [
        (
            "checkpoints",
            f"{len(rep.checkpoints)}" + (f", steps {step_range(min(steps), max(steps))}" if steps else ""),
        ),
        (
            "layers",
            f"{len(rep.layers)}"
            + (": " + ", ".join(rep.layers[:8]) if rep.layers else "")
            + (" …" if len(rep.layers) > 8 else ""),
        ),
    ]
    if rep.errors:
        out.append(("unreadable", f"{len(rep.errors)} file(s) skipped"))
    if (caveat := transformer_caveat(rep.layers)) is not None:
        out.append(("caveat", caveat))
    if not getattr(rep.settings, "traps", True):
        out.append(("traps", "not computed (--no-traps)"))
    w = rep.warning
    over = f"trusted alpha < {rep.rules.alpha_low:g} or a trap"
    if w is not None:
        lead = lead_text(rep, w)
        why = f"first anti-grokking label: {w.reason}" if rep.warning_is_first_anti else w.warning
        where = w.label if w.label == w.rel else f"{w.label} ({w.rel})"
        out.append(("early warning", f"{where}: {why}" + (f"; {lead}" if lead else "")))
    elif rep.warning_is_first_anti:
        out.append(("early warning", "none (no checkpoint labelled anti-grokking)"))
    else:
        out.append(("early warning", f"none (no {over})"))
    o = rep.over_correlated
    if rep.warning_is_first_anti and o is not None:
        out.append(
            (
                "over-correlated",
                f"{over} at {rep.n_over_correlated} of {len(rep.checkpoints)} checkpoints, first {o.label}: "
                f"{o.warning}; alone no warning (it is on in measured runs that never collapse)",
            )
        )
    if rep.onset is not None:
        out.append(("grokking onset", f"{rep.onset.label}: {rep.onset.reason}"))
    if rep.best is not None and rep.first_anti is not None:
        out.append(
            (
                "best checkpoint",
                f"{rep.best.label} ({rep.best.rel}): the last grokking one before anti-grokking",
            )
        )
    a = rep.first_anti
    if a is not None and not rep.warning_is_first_anti:  # under the trend rule it is the early warning
        lead = lead_text(rep, a)
        out.append(("first anti-grokking", f"{a.label}: {a.reason}" + (f"; {lead}" if lead else "")))
    if rep.peak is not None:
        p = rep.peak
        text = f"{p.test_acc:.3f} at {p.label}"
        if rep.drop is not None:
            d = rep.drop
            text += f"; fell to {d.test_acc:.3f} (≥ {rep.acc_drop:g} below the peak) at {d.label}"
        else:
            text += f"; never fell {rep.acc_drop:g} or more below it"
        out.append(("peak test accuracy", text))
    ag = rep.agreement
    if ag is not None:
        if ag.compared:
            out.append(
                (
                    "agreement",
                    f"spectral phase = accuracy phase at {ag.agree}/{ag.compared} "
                    f"checkpoints ({100 * ag.fraction:.0f}%), balanced over phases {100 * ag.balanced:.0f}%"
                    + (f"; {ag.false_alarms} false alarm(s)" if ag.false_alarms else ""),
                )
            )
        else:
            out.append(("agreement", "no checkpoint with an accuracy phase"))
    if rep.has_accuracy:
        from grokwatch.report.measures import tracking_text

        line = tracking_text(rep)
        if line:
            out.append(("ρ with test acc", line))
    out.append(("level", rep.level))
    return out
