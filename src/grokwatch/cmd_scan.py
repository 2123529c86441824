"""`grokwatch scan`: alpha and spectral metrics for every layer of every checkpoint."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from grokwatch.cli_common import (
    AlphaHighOpt,
    AlphaLowOpt,
    CacheOpt,
    CachePathOpt,
    DirArg,
    ExcludeOpt,
    FormatOpt,
    LayersOpt,
    MinEvalsOpt,
    OutputFormat,
    PreRule,
    PreRuleOpt,
    ReplicasOpt,
    SeedOpt,
    TrapMinOpt,
    WorkersOpt,
    emit,
    finish,
    run_scan,
)


class FitMethod(str, Enum):
    ww = "ww"
    peak = "peak"
    powerlaw = "powerlaw"


FitOpt = Annotated[FitMethod, typer.Option("--fit", envvar="GROKWATCH_FIT", help=(
    "Power-law fit: ww = WeightWatcher's default (free xmin, minimum KS distance); peak = xmin within "
    "[0.95, 1.5] x the ESD's log-histogram peak; powerlaw = the powerlaw package (slow cross-check)."))]


def scan(
    directory: DirArg,
    fmt: FormatOpt = OutputFormat.table,
    fit: FitOpt = FitMethod.ww,
    traps: Annotated[bool, typer.Option("--traps", help="Also count correlation traps (adds n_traps).")] = False,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="Table with one row per layer and the fit's "
                                            "evidence (sigma, xmin, KS distance D, n_tail, norms).")] = False,
    workers: WorkersOpt = None,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    layers: LayersOpt = None,
    exclude: ExcludeOpt = None,
    seed: SeedOpt = 0,
    replicas: ReplicasOpt = None,
    alpha_low: AlphaLowOpt = 2.0,
    alpha_high: AlphaHighOpt = 6.0,
    trap_min: TrapMinOpt = 2,
    min_evals: MinEvalsOpt = 20,
    pre_rule: PreRuleOpt = PreRule.any,
) -> None:
    """Fit the power-law exponent alpha of every layer's ESD in every checkpoint.

    Prints one row per checkpoint (alpha per layer and a phase label) or, with
    --format json/csv, one record per (checkpoint, layer). Exit codes: 0 ok,
    2 usage error, 3 some file unreadable or unsafe (the rest is still
    printed), 4 no checkpoints found.
    """
    from grokwatch.analyze import Settings
    from grokwatch.phases import PhaseRules

    settings = Settings(fit=fit.value, traps=traps, seed=seed, replicas=replicas,
                        layers=tuple(layers or ()), exclude=tuple(exclude or ()))
    rules = PhaseRules(alpha_low=alpha_low, alpha_high=alpha_high, trap_min=trap_min, min_evals=min_evals,
                       pre_rule=pre_rule.value)
    result = run_scan(directory, settings, workers, cache, cache_path, rules)
    emit(result, fmt, title=f"grokwatch scan {directory} (fit={fit.value})", show_traps=traps,
         per_layer=per_layer)
    finish(result)
