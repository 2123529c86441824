"""Typer options shared by the commands, their defaults taken from `grokwatch.settings`.

A command declares `alpha_low: AlphaLowOpt = DEFAULT_RULES.alpha_low`, so each
default is written once (in the settings dataclasses) and every command that
offers the option offers the same name, help and environment variable.
"""

from __future__ import annotations

from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from grokwatch.settings import (
    DEFAULT_DEVICE,
    DEFAULT_RULES,
    DEFAULT_SETTINGS,
    Device,
    Fit,
    NormScope,
    PhaseRules,
    PreRule,
    Rule,
    Settings,
)

__all__ = ["DEFAULT_DEVICE", "DEFAULT_RULES", "DEFAULT_SETTINGS", "Device", "Fit", "OutputFormat", "PreRule"]


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


DirArg = Annotated[
    Path,
    typer.Argument(
        help="Checkpoint folder (searched recursively) or one checkpoint file.", show_default=False
    ),
]
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format.", envvar="GROKWATCH_FORMAT")
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-j",
        min=1,
        envvar="GROKWATCH_WORKERS",
        help="Worker processes.",
        show_default="all cores",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="GROKWATCH_SCHEDULER",
        help="Analyse on a Dask cluster: a scheduler address (tcp://HOST:8786), or 'local' for a "
        "LocalCluster of --workers processes. Needs pip install 'grokwatch[dask]'; workers read the "
        "checkpoints from the same paths.",
        show_default="local worker processes",
    ),
]
DeviceOpt = Annotated[
    Device,
    typer.Option(
        "--device",
        envvar="GROKWATCH_DEVICE",
        help="Where eigenvalues are computed: cpu = numpy in the worker processes; cuda = batched "
        "float64 eigvalsh on the GPU in this process (needs torch with CUDA; -j is then unused); "
        "auto = cuda when a CUDA device is present, else cpu. alpha agrees within 1e-9, so cached "
        "results are shared.",
    ),
]
CacheOpt = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        envvar="GROKWATCH_CACHE",
        help="Reuse results stored in DIR/.grokwatch-cache.sqlite.",
    ),
]
CachePathOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-path",
        envvar="GROKWATCH_CACHE_PATH",
        help="SQLite cache file to use instead of the default.",
        show_default="DIR/.grokwatch-cache.sqlite",
    ),
]
LayersOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--layers",
        "-l",
        help="Only layers matching this glob (repeatable), e.g. 'fc*.weight'.",
        show_default="every 2-D or conv layer",
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", "-x", help="Skip layers matching this glob (repeatable).", show_default="none"),
]
BaseOpt = Annotated[
    Path | None,
    typer.Option(
        "--base",
        help="Base model (file or folder) of the LoRA adapters scanned: analyse each adapted layer "
        "as the merged weight W + scale*B@A instead of the update alone.",
        show_default="none: the update alone",
    ),
]
EmbeddingsOpt = Annotated[
    bool,
    typer.Option(
        "--embeddings/--no-embeddings",
        help="Include embedding and unembedding tables (tok_embed, wte, wpe, embed_tokens, lm_head, "
        "unembed...), as WeightWatcher does.",
    ),
]
WeightEntropyOpt = Annotated[
    bool,
    typer.Option(
        "--weight-entropy",
        help="Also compute each layer's absolute weight entropy, -sum |w| log|w| (the Grokking-MNIST "
        "notebook's rival of alpha; a log per weight, ~20 % more scan time on the paper's MLP).",
    ),
]
SplitQkvOpt = Annotated[
    bool,
    typer.Option(
        "--split-qkv",
        help="Analyse fused QKV projections (c_attn, in_proj_weight, qkv, query_key_value) as three "
        "matrices NAME[q], NAME[k], NAME[v] instead of one matrix as stored (WeightWatcher's way); "
        "grouped-query ones (Phi-3, Falcon) are split with config.json's head counts.",
    ),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", envvar="GROKWATCH_SEED", help="Seed of the element shuffles (traps).")
]
ReplicasOpt = Annotated[
    int | None,
    typer.Option(
        "--replicas",
        min=1,
        help="Shuffles per layer for traps.",
        show_default="5 when the layer has < 100 eigenvalues, else 1",
    ),
]
AlphaLowOpt = Annotated[
    float,
    typer.Option(
        "--alpha-low",
        envvar="GROKWATCH_ALPHA_LOW",
        help="Phase rule: a trusted alpha below this means anti-grokking.",
    ),
]
AlphaHighOpt = Annotated[
    float,
    typer.Option(
        "--alpha-high",
        envvar="GROKWATCH_ALPHA_HIGH",
        help="Phase rule: a trusted alpha above this means pre-grokking.",
    ),
]
TrapMinOpt = Annotated[
    int,
    typer.Option(
        "--trap-min",
        envvar="GROKWATCH_TRAP_MIN",
        help="Phase rule: this many traps in one layer mean anti-grokking.",
    ),
]
PreRuleOpt = Annotated[
    PreRule,
    typer.Option(
        "--pre-rule",
        envvar="GROKWATCH_PRE_RULE",
        help="Phase rule: pre-grokking when 'any' or 'all' trusted layers have alpha above --alpha-high.",
    ),
]
MinEvalsOpt = Annotated[
    int,
    typer.Option(
        "--min-evals",
        help="Phase rule: ignore layers with fewer "
        "eigenvalues (below 20 the fit is WeightWatcher's small-N fit).",
    ),
]
FitOpt = Annotated[
    Fit,
    typer.Option(
        "--fit",
        envvar="GROKWATCH_FIT",
        help=(
            "Power-law fit: ww = WeightWatcher's default (free xmin, minimum KS distance); peak = xmin within "
            "[0.95, 1.5] x the ESD's log-histogram peak; powerlaw = the powerlaw package (slow cross-check)."
        ),
    ),
]
RuleOpt = Annotated[
    Rule,
    typer.Option(
        "--rule",
        envvar="GROKWATCH_RULE",
        help="Phase labeller: trend = each layer's trajectory over the run (causal; docs/scan.md); "
        "threshold = fixed alpha/trap thresholds per checkpoint; paper = alpha < 2 anti, > 6 pre.",
    ),
]
OnsetOpt = Annotated[
    float,
    typer.Option(
        "--onset-contraction",
        envvar="GROKWATCH_ONSET_CONTRACTION",
        help="Trend rule: grokking starts when a layer's stable rank has fallen this many decades "
        "since the first checkpoint.",
    ),
]
OnsetShrinkOpt = Annotated[
    float,
    typer.Option(
        "--onset-shrink",
        envvar="GROKWATCH_ONSET_SHRINK",
        help="Trend rule: ... once some layer's Frobenius norm is this many decades below its peak.",
    ),
]
AntiReboundOpt = Annotated[
    float,
    typer.Option(
        "--anti-rebound",
        envvar="GROKWATCH_ANTI_REBOUND",
        help="Trend rule: anti-grokking when a layer whose norm fell grows back this many decades "
        "from its low.",
    ),
]
AntiAlphaOpt = Annotated[
    float,
    typer.Option(
        "--anti-alpha",
        envvar="GROKWATCH_ANTI_ALPHA",
        help="Trend rule: anti-grokking when a layer's median alpha of its recent fits is below this ...",
    ),
]
AntiGrowthOpt = Annotated[
    float,
    typer.Option(
        "--anti-growth",
        envvar="GROKWATCH_ANTI_GROWTH",
        help="... and its Frobenius norm grew this many decades (log10) over the last 5 checkpoints.",
    ),
]

AntiNormOpt = Annotated[
    NormScope,
    typer.Option(
        "--anti-norm",
        envvar="GROKWATCH_ANTI_NORM",
        help="... whose norm: the over-correlated layer's own, or the whole model's (every analysed "
        "layer's squared norm summed).",
    ),
]

# several runs: `grokwatch report RUN_A RUN_B`, `grokwatch scan A B` (one run behaves as before)
DirsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Checkpoint folders (searched recursively) or checkpoint files; several compare runs side by side. "
        "Name a run with NAME=PATH (default: the folder's name).",
        show_default=False,
        metavar="RUN",
    ),
]


def settings_from(params: dict, **fixed) -> Settings:
    """The Settings of a command's analysis options: `settings_from(locals())` (every field it offers;
    `fixed` for what the command decides itself, e.g. traps=True)."""
    given = {f.name: params[f.name] for f in fields(Settings) if f.name in params}
    return Settings(**(given | fixed))


def rules_from(params: dict) -> PhaseRules:
    """The PhaseRules of a command's phase options: `rules_from(locals())` (every field it offers)."""
    return PhaseRules(**{f.name: params[f.name] for f in fields(PhaseRules) if f.name in params})
