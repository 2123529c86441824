"""`grokwatch scan`: alpha and spectral metrics for every layer of every checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from grokwatch.cli.common import emit, finish, run_scan
from grokwatch.cli.options import (
    DEFAULT_DEVICE,
    DEFAULT_RULES,
    DEFAULT_SETTINGS,
    AlphaHighOpt,
    AlphaLowOpt,
    AntiAlphaOpt,
    AntiGrowthOpt,
    AntiNormOpt,
    AntiReboundOpt,
    BaseOpt,
    CacheOpt,
    CachePathOpt,
    DeviceOpt,
    DirsArg,
    EmbeddingsOpt,
    ExcludeOpt,
    FitOpt,
    FormatOpt,
    LayersOpt,
    MinEvalsOpt,
    OnsetOpt,
    OnsetShrinkOpt,
    OutputFormat,
    PreRuleOpt,
    ReplicasOpt,
    RuleOpt,
    SchedulerOpt,
    SeedOpt,
    SplitQkvOpt,
    TrapMinOpt,
    WeightEntropyOpt,
    WorkersOpt,
    rules_from,
    settings_from,
)

__all__ = ["scan"]


def scan(
    directories: DirsArg,
    fmt: FormatOpt = OutputFormat.table,
    fit: FitOpt = DEFAULT_SETTINGS.fit,
    traps: Annotated[
        bool, typer.Option("--traps", help="Also count correlation traps (adds n_traps).")
    ] = False,
    per_layer: Annotated[
        bool,
        typer.Option(
            "--per-layer",
            help="Table with one row per layer and the fit's "
            "evidence (sigma, xmin, KS distance D, n_tail, norms).",
        ),
    ] = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    device: DeviceOpt = DEFAULT_DEVICE,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    layers: LayersOpt = None,
    exclude: ExcludeOpt = None,
    base: BaseOpt = None,
    embeddings: EmbeddingsOpt = DEFAULT_SETTINGS.embeddings,
    split_qkv: SplitQkvOpt = DEFAULT_SETTINGS.split_qkv,
    weight_entropy: WeightEntropyOpt = DEFAULT_SETTINGS.weight_entropy,
    seed: SeedOpt = DEFAULT_SETTINGS.seed,
    replicas: ReplicasOpt = None,
    alpha_low: AlphaLowOpt = DEFAULT_RULES.alpha_low,
    alpha_high: AlphaHighOpt = DEFAULT_RULES.alpha_high,
    trap_min: TrapMinOpt = DEFAULT_RULES.trap_min,
    min_evals: MinEvalsOpt = DEFAULT_RULES.min_evals,
    pre_rule: PreRuleOpt = DEFAULT_RULES.pre_rule,
    rule: RuleOpt = DEFAULT_RULES.rule,
    onset_contraction: OnsetOpt = DEFAULT_RULES.onset_contraction,
    onset_shrink: OnsetShrinkOpt = DEFAULT_RULES.onset_shrink,
    anti_alpha: AntiAlphaOpt = DEFAULT_RULES.anti_alpha,
    anti_growth: AntiGrowthOpt = DEFAULT_RULES.anti_growth,
    anti_norm: AntiNormOpt = DEFAULT_RULES.anti_norm,
    anti_rebound: AntiReboundOpt = DEFAULT_RULES.anti_rebound,
) -> None:
    """Fit the power-law exponent alpha of every layer's ESD in every checkpoint.

    Prints one row per checkpoint (alpha per layer and a phase label) or, with
    --format json/csv, one record per (checkpoint, layer). Exit codes: 0 ok,
    2 usage error, 3 some file unreadable or unsafe (the rest is still
    printed), 4 no checkpoints found (2 also for --device cuda where no CUDA
    device is available), 5 --scheduler unusable (no Dask, scheduler
    unreachable or lost, workers on another grokwatch version).

    Several folders (NAME=PATH to name one) are scanned one after the other:
    a table per run, or json/csv records with a leading `run` field; a folder
    without checkpoints prints one error line, the rest is still printed, and
    the exit code is 4.
    """
    settings = settings_from(locals())
    # how to scan, the same for one folder or several
    how = dict(
        workers=workers,
        cache=cache,
        cache_path=cache_path,
        rules=rules_from(locals()),
        scheduler=scheduler,
        device=device,
    )
    if len(directories) > 1:
        _scan_several(directories, settings, how, fmt, per_layer)
        return
    directory = directories[0]
    result = run_scan(directory, settings, **how)
    emit(
        result,
        fmt,
        title=f"grokwatch scan {directory} (fit={settings.fit})",
        show_traps=settings.traps,
        per_layer=per_layer,
    )
    finish(result)


def _scan_several(directories, settings, how: dict, fmt, per_layer) -> None:
    from grokwatch.cli.runs import emit_runs, named_runs, scan_runs
    from grokwatch.errors import ExitCode

    results, missing = scan_runs(named_runs(directories), settings, **how)
    title = f"grokwatch scan (fit={settings.fit})"
    emit_runs(results, fmt, title=title, show_traps=settings.traps, per_layer=per_layer)
    if missing:
        raise typer.Exit(ExitCode.NO_CHECKPOINTS)
    if any(res.errors for _, res in results):
        raise typer.Exit(ExitCode.BAD_INPUT)
