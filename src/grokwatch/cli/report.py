"""`grokwatch report`: a summary for people, files for browsers and CI, an exit code for gates."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from grokwatch.cli.common import check_output_file, environment, error_line, run_scan, warn_line
from grokwatch.cli.options import (
    DEFAULT_RULES,
    DEFAULT_SETTINGS,
    AlphaHighOpt,
    AlphaLowOpt,
    AntiAlphaOpt,
    AntiGrowthOpt,
    CacheOpt,
    CachePathOpt,
    DirArg,
    ExcludeOpt,
    FitOpt,
    LayersOpt,
    MinEvalsOpt,
    OnsetOpt,
    PreRuleOpt,
    ReplicasOpt,
    RuleOpt,
    SeedOpt,
    TrapMinOpt,
    WorkersOpt,
)
from grokwatch.errors import ExitCode

__all__ = ["FailOn", "report"]


class FailOn(str, Enum):
    none = "none"
    trap = "trap"
    anti = "anti-grokking"


def report(
    directory: DirArg,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write a self-contained HTML report to this file "
            "(no JavaScript, no external URLs, plots inline).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            "--markdown",
            help="Write a compact Markdown summary to this "
            "file ('-' for stdout). When GITHUB_STEP_SUMMARY is set, the summary is also "
            "appended to it.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            envvar="GROKWATCH_FAIL_ON",
            help=(
                "Exit 1 when a checkpoint is at or above this level: trap = any correlation trap or anti-grokking; "
                "anti-grokking = a checkpoint labelled anti-grokking."
            ),
        ),
    ] = FailOn.none,
    exit_zero: Annotated[
        bool,
        typer.Option(
            "--exit-zero", help="Exit 0 even when --fail-on finds something (input errors still exit 3 or 4)."
        ),
    ] = False,
    traps: Annotated[
        bool,
        typer.Option(
            "--traps/--no-traps",
            help="Count correlation traps (they feed the phase rule, the early warning and --fail-on trap).",
        ),
    ] = True,
    acc_drop: Annotated[
        float,
        typer.Option(
            "--acc-drop",
            min=0.0,
            max=1.0,
            help=(
                "Accuracy phases: test accuracy this far below its peak (with train accuracy >= 0.99) is "
                "anti-grokking; also the size of the drop the early warning is timed against."
            ),
        ),
    ] = 0.03,
    fit: FitOpt = DEFAULT_SETTINGS.fit,
    workers: WorkersOpt = None,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    layers: LayersOpt = None,
    exclude: ExcludeOpt = None,
    seed: SeedOpt = DEFAULT_SETTINGS.seed,
    replicas: ReplicasOpt = None,
    alpha_low: AlphaLowOpt = DEFAULT_RULES.alpha_low,
    alpha_high: AlphaHighOpt = DEFAULT_RULES.alpha_high,
    trap_min: TrapMinOpt = DEFAULT_RULES.trap_min,
    min_evals: MinEvalsOpt = DEFAULT_RULES.min_evals,
    pre_rule: PreRuleOpt = DEFAULT_RULES.pre_rule,
    rule: RuleOpt = DEFAULT_RULES.rule,
    onset_contraction: OnsetOpt = DEFAULT_RULES.onset_contraction,
    anti_alpha: AntiAlphaOpt = DEFAULT_RULES.anti_alpha,
    anti_growth: AntiGrowthOpt = DEFAULT_RULES.anti_growth,
) -> None:
    """Summarize a run: phase timeline, early warning, accuracy agreement; HTML/Markdown; CI gate.

    Uses the same scan (and cache) as `grokwatch scan --traps`. Prints a summary:
    checkpoints, the phase timeline (step ranges of pre-grokking / grokking /
    anti-grokking), the first checkpoint with a layer alpha < 2 or a trap (the
    early warning) and, where checkpoints record accuracy, the peak test accuracy,
    where it fell, how often the spectral phase agrees with the accuracy phase
    and how many steps before the drop the warning came. Under
    GITHUB_ACTIONS=true, prints a ::warning:: line per anti-grokking checkpoint.

    Exit codes: 0 ok; 1 a checkpoint at or above --fail-on (unless --exit-zero);
    2 usage error; 3 some file unreadable or unsafe (the report covers the rest);
    4 no checkpoints found.
    """
    from grokwatch.checkpoints.atomic import write_atomic
    from grokwatch.report.model import build_report
    from grokwatch.report.summary import annotations, render_terminal, to_markdown
    from grokwatch.settings import PhaseRules, Settings

    settings = Settings(
        fit=fit,
        traps=traps,
        seed=seed,
        replicas=replicas,
        layers=tuple(layers or ()),
        exclude=tuple(exclude or ()),
    )
    rules = PhaseRules(
        alpha_low=alpha_low,
        alpha_high=alpha_high,
        trap_min=trap_min,
        min_evals=min_evals,
        pre_rule=pre_rule,
        rule=rule,
        onset_contraction=onset_contraction,
        anti_alpha=anti_alpha,
        anti_growth=anti_growth,
    )
    if html is not None:
        check_output_file(html, "--html")
    if markdown is not None and str(markdown) != "-":
        check_output_file(markdown, "--markdown")
    result = run_scan(directory, settings, workers, cache, cache_path, rules)
    rep = build_report(result, rules, acc_drop=acc_drop)
    env = environment()

    md_stdout = markdown is not None and str(markdown) == "-"
    if not md_stdout:  # `--markdown -` keeps stdout for the Markdown alone
        render_terminal(rep, env.stdout_console())
    if env.github_actions:
        for line in annotations(rep):
            print(line, flush=True)

    def write(path: Path, text: str) -> None:
        try:
            write_atomic(path, text)
        except OSError as e:  # checked before the scan; this is a disk filling up, a race
            error_line(f"cannot write {path}: {e.strerror or e}")
            raise typer.Exit(ExitCode.USAGE) from None

    if html is not None:
        from grokwatch.report.html import build_html

        write(html, build_html(rep, result))
    md = to_markdown(rep) if (markdown is not None or env.step_summary) else None
    if md_stdout:
        sys.stdout.write(md)
    elif markdown is not None:
        write(markdown, md)
    summary = env.step_summary
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(md + "\n")
        except OSError as e:
            error_line(f"cannot append to GITHUB_STEP_SUMMARY {summary}: {e.strerror or e}")
            raise typer.Exit(ExitCode.USAGE) from None
    sys.stdout.flush()

    if result.errors:
        raise typer.Exit(ExitCode.BAD_INPUT)
    hits = rep.at_or_above(fail_on.value)
    if hits:
        first = hits[0]
        msg = (
            f"--fail-on {fail_on.value}: {len(hits)} checkpoint(s) at or above it, first {first.label} "
            f"({first.rel})"
        )
        if exit_zero:
            warn_line(msg + "; exiting 0 (--exit-zero)")
            return
        error_line(msg)
        raise typer.Exit(ExitCode.FINDINGS)
