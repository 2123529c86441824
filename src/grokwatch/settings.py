"""Every option that changes what grokwatch computes or how it labels, each default stated once.

`Settings` decides a layer's numbers (and so keys the cache); `PhaseRules` decides
the phase label built from them. The enums are the choices the CLI offers; the
dataclasses accept their values as plain strings too and validate them when
constructed, so `Settings(fit="WW")` fails at once with the valid choices
instead of giving every layer "analysis failed".

This module imports nothing heavy: the CLI builds its options from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from enum import StrEnum

from grokwatch import __version__

__all__ = ["DEFAULT_DEVICE", "MIN_SIDE", "Device", "Fit", "PhaseRules", "PreRule", "Rule", "Settings"]

# What `--split-qkv` splits, in the cache key: a cached split of another version is recomputed.
SPLIT_QKV_LAYOUT = 2  # 1: equal thirds only; 2: also grouped-query / multi-query from config.json
MIN_SIDE = 10  # skip matrices whose smaller side is below this (WeightWatcher's MIN_EVALS idea)


class Fit(StrEnum):
    """Power-law fit of the ESD tail."""

    ww = "ww"  # WeightWatcher's default: free xmin, minimum KS distance
    peak = "peak"  # xmin within [0.95, 1.5] x the log-histogram peak
    powerlaw = "powerlaw"  # the powerlaw package (a cross-check)


class Device(StrEnum):
    """Where eigenvalues are computed. Not part of `Settings`: it does not change a layer's numbers
    beyond rounding (alpha agrees within 1e-9 on the test matrices), so it does not key the cache."""

    auto = "auto"  # cuda when a CUDA device is there (checked without importing torch when no driver is)
    cpu = "cpu"  # numpy/LAPACK in the pool's processes
    cuda = "cuda"  # batched torch.linalg.eigvalsh in float64 on the GPU, in this process


class Rule(StrEnum):
    """Which phase labeller: the run's trajectory (default), fixed thresholds, or the paper's rule."""

    trend = "trend"
    threshold = "threshold"
    paper = "paper"


class NormScope(StrEnum):
    """Whose norm must be growing for the trend rule's over-correlation branch: the over-correlated
    layer's own, or the whole model's (the sum of every analysed layer's squared norm)."""

    layer = "layer"
    model = "model"


class PreRule(StrEnum):
    """Pre-grokking when `any` or `all` trusted layers have alpha above alpha_high."""

    any = "any"
    all = "all"


def _enum(cls: type[StrEnum], value: object, field_name: str) -> StrEnum:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"{field_name}={value!r} is not one of: {choices}") from None


def _patterns(value: object, field_name: str) -> tuple[str, ...]:
    """A glob or a sequence of globs; a bare string is one pattern, not its characters."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    out = tuple(value)
    if not all(isinstance(p, str) for p in out):
        raise ValueError(f"{field_name} must be glob strings, got {value!r}")
    return out


@dataclass(frozen=True)
class Settings:
    """Everything that changes a layer's numbers (and so keys the cache).

    Values are validated here, so a typo fails at once with the valid choices
    instead of surfacing as "analysis failed" on every layer; a bare string is
    one glob, not its characters.

        Settings(fit="peak", traps=True, layers="fc*")   # layers == ("fc*",)
        Settings(fit="WW")                               # ValueError: fit='WW' is not one of: ww, peak, powerlaw
    """

    fit: Fit = Fit.ww
    traps: bool = False
    seed: int = 0  # seed of the element shuffles (traps)
    replicas: int | None = None  # shuffles per layer; None = 5 when M < 100, else 1
    layers: tuple[str, ...] = ()  # glob patterns on layer names; empty = all
    exclude: tuple[str, ...] = ()
    min_side: int = MIN_SIDE
    base: str | None = None  # base model of LoRA adapters: analyse W + ΔW instead of ΔW (`--base`)
    # Embedding and unembedding tables (checkpoints/layers.py: is_embedding): included, as
    # WeightWatcher analyses nn.Embedding layers and the output nn.Linear.
    embeddings: bool = True
    # Fused QKV projections (c_attn, in_proj_weight, qkv, query_key_value) as three matrices
    # `name[q]`, `name[k]`, `name[v]` (d x d, smaller K and V with grouped-query attention, split
    # with config.json's head counts); off = one matrix as stored, as WeightWatcher does.
    split_qkv: bool = False
    # -sum |w| log|w| per layer (grokwatch.measures), the notebook's rival of alpha; off by default
    # because it costs a log per weight (the Frobenius norm comes free with the eigenvalues)
    weight_entropy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "fit", _enum(Fit, self.fit, "fit"))
        if self.base is not None:
            from grokwatch.checkpoints.base_model import load_base

            # absolute now: a worker that reads it (a Dask worker elsewhere, a notebook that
            # changes folder between scans) must not resolve it against its own current folder
            object.__setattr__(self, "base", os.path.abspath(self.base))
            load_base(self.base)  # a wrong --base fails here, once, before any checkpoint is read
        object.__setattr__(self, "layers", _patterns(self.layers, "layers"))
        object.__setattr__(self, "exclude", _patterns(self.exclude, "exclude"))
        if self.replicas is not None and self.replicas < 1:
            raise ValueError(f"replicas must be >= 1 or None, got {self.replicas!r}")

    def cache_key(self) -> str:
        d = asdict(self)
        d["fit"] = str(self.fit)
        d["version"] = __version__
        if not self.traps:
            d.pop("seed"), d.pop("replicas")
        # options at their defaults stay out of the key: caches written before they existed stay valid
        for name, default in (
            ("base", None),
            ("embeddings", True),
            ("split_qkv", False),
            ("weight_entropy", False),
        ):
            if d[name] == default:
                d.pop(name)
        if self.split_qkv:  # 2: grouped-query QKV is split too (version 1 kept it whole)
            d["split_qkv"] = SPLIT_QKV_LAYOUT
        if self.base is not None:  # a replaced or edited base model changes W + ΔW
            from grokwatch.checkpoints.base_model import fingerprint

            d["base"] = [self.base, fingerprint(self.base)]
        return json.dumps(d, sort_keys=True)


@dataclass(frozen=True)
class PhaseRules:
    """Which phase labeller and its thresholds (see `grokwatch.phases` and docs/phases.md).

    PhaseRules()                                   # the trend rule with its measured defaults
    PhaseRules(rule="paper")                       # alpha < 2 anti, alpha > 6 pre, per checkpoint
    scan_folder("runs/long", rules=PhaseRules(anti_rebound=0.2))   # warn earlier
    """

    alpha_low: float = 2.0  # a trusted alpha below this: over-correlated (anti-grokking)
    alpha_high: float = 6.0  # a trusted alpha above this: random-like (pre-grokking)
    trap_min: int = 2  # this many traps in one layer: anti-grokking
    min_evals: int = 20  # layers with fewer eigenvalues vote neither with alpha nor traps
    pre_rule: PreRule = PreRule.any
    rule: Rule = Rule.trend
    # trend rule (grokwatch.phases.trend): the grid point that agreed best with accuracy phases on the
    # 12-run corpus of bench/phase_runs.py + bench/transformer_runs.py; leave-one-run-out figures in docs/phases.md
    onset_contraction: float = 0.06  # decades of stable-rank fall that start grokking ...
    onset_shrink: float = 0.5  # ... once some layer's norm is this many decades below its peak
    anti_alpha: float = 3.0  # median alpha of the recent fits below this ...
    anti_growth: float = 0.02  # ... while the norm grew this many decades over `window` checkpoints
    anti_norm: NormScope = NormScope.model  # ... whose norm: the layer's own, or the whole model's
    anti_rebound: float = 0.3  # or a layer whose norm fell grew back this many decades: anti-grokking
    window: int = 5  # trusted fits in the median, checkpoints in the norm trend

    def __post_init__(self) -> None:
        object.__setattr__(self, "pre_rule", _enum(PreRule, self.pre_rule, "pre_rule"))
        object.__setattr__(self, "rule", _enum(Rule, self.rule, "rule"))
        object.__setattr__(self, "anti_norm", _enum(NormScope, self.anti_norm, "anti_norm"))


DEFAULT_SETTINGS = Settings()
DEFAULT_DEVICE = Device.auto
DEFAULT_RULES = PhaseRules()


def field_default(cls: type, name: str):
    """The default of one dataclass field, for CLI options built from these classes."""
    return next(f.default for f in fields(cls) if f.name == name)
