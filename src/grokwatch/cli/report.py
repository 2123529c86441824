"""`grokwatch report`: a summary for people, files for browsers and CI, an exit code for gates."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from grokwatch.cli.common import check_output_dir, check_output_file, environment, error_line, warn_line
from grokwatch.cli.options import (
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
    DirsArg,
    EmbeddingsOpt,
    ExcludeOpt,
    FitOpt,
    LayersOpt,
    MinEvalsOpt,
    OnsetOpt,
    OnsetShrinkOpt,
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
from grokwatch.errors import ExitCode

__all__ = ["FailOn", "FigureFormat", "report"]


class FigureFormat(str, Enum):
    svg = "svg"
    png = "png"


class FailOn(str, Enum):
    none = "none"
    trap = "trap"
    anti = "anti-grokking"


def report(
    directories: DirsArg,
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
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the report's model as JSON to this file ('-' for stdout): per run the summary, "
            "timeline, per-checkpoint table with every layer's fit, and the runs-compared table.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            help="Write every plot of the report as a standalone file into this folder.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    figure_format: Annotated[
        FigureFormat, typer.Option("--figure-format", help="File format of --figures.")
    ] = FigureFormat.svg,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap",
            min=0,
            help="Resample each layer's eigenvalues this many times, refit, and report the spread of "
            "alpha (seeded by --seed; re-reads the weights; 0 = off).",
        ),
    ] = 0,
    esd_steps: Annotated[
        str | None,
        typer.Option(
            "--esd-steps",
            help="Draw ESD plots at these steps (comma-separated; nearest checkpoint) instead of the "
            "first checkpoint, every phase boundary, the first warning, the best and the last.",
            show_default=False,
        ),
    ] = None,
    chart: Annotated[
        bool,
        typer.Option("--chart/--no-chart", help="Draw alpha per layer against log step as a text chart."),
    ] = True,
    fit: FitOpt = DEFAULT_SETTINGS.fit,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
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
    """Summarize a run: phase timeline, early warning, accuracy agreement; HTML/Markdown; CI gate.

    Uses the same scan (and cache) as `grokwatch scan --traps`. Prints a summary:
    checkpoints, the phase timeline (step ranges of pre-grokking / grokking /
    anti-grokking), the early warning (the first anti-grokking label; under
    --rule paper/threshold the first layer alpha < 2 or trap) and, where
    checkpoints record accuracy, the peak test accuracy,
    where it fell, how often the spectral phase agrees with the accuracy phase
    and how many steps before the drop the warning came. Under
    GITHUB_ACTIONS=true, prints a ::warning:: line per anti-grokking checkpoint.

    Several folders (NAME=PATH to name one) give one report comparing the runs:
    the HTML puts every run's alpha and accuracy on one log-step axis with a
    phase band row per run, and all outputs add a table with one row per run.

    Exit codes: 0 ok; 1 a checkpoint at or above --fail-on (unless --exit-zero);
    2 usage error; 3 some file unreadable or unsafe (the report covers the rest);
    4 no checkpoints found (in any of several folders: the others are reported);
    5 --scheduler unusable (no Dask, scheduler unreachable or lost, workers
    on another grokwatch version).
    """
    from grokwatch.checkpoints.atomic import write_atomic
    from grokwatch.report.model import build_report
    from grokwatch.report.summary import annotations, render_terminal, to_markdown

    settings = settings_from(locals())
    rules = rules_from(locals())
    if html is not None:
        check_output_file(html, "--html")
    if markdown is not None and str(markdown) != "-":
        check_output_file(markdown, "--markdown")
    if json_out is not None and str(json_out) != "-":
        check_output_file(json_out, "--json")
    if figures is not None:
        check_output_dir(figures, "--figures")
    from grokwatch.cli.runs import named_runs, scan_runs
    from grokwatch.report.multi_run import Run
    from grokwatch.report.uncertainty import bootstrap_report, jump_flags

    specs = named_runs(directories)
    steps = None
    if esd_steps:
        from grokwatch.report.esd_picks import parse_steps

        try:
            steps = parse_steps(esd_steps)
        except ValueError as e:
            error_line(f"--esd-steps: {e}")
            raise typer.Exit(ExitCode.USAGE) from None
    scanned, missing = scan_runs(specs, settings, workers, cache, cache_path, rules, scheduler)
    runs = []
    bad = any(res.errors for _, res in scanned)
    for name, result in scanned:
        rep = build_report(result, rules, acc_drop=acc_drop, name=name)
        run = Run(rep.name, rep, result, jumps=jump_flags(rep))
        if bootstrap:
            run.boot, errs = bootstrap_report(rep, result, bootstrap)
            for line in errs:
                error_line(line)
            bad = bad or bool(errs)
        runs.append(run)
    env = environment()

    md_stdout = markdown is not None and str(markdown) == "-"
    json_stdout = json_out is not None and str(json_out) == "-"
    if not (md_stdout or json_stdout):  # `--markdown -` / `--json -` keep stdout for themselves
        con = env.stdout_console()
        for run in runs:
            render_terminal(run.rep, con)
            if chart:
                from grokwatch.report.text_chart import render_chart

                render_chart(run.rep, con, jumps=run.jumps)
        if len(runs) > 1:
            from grokwatch.report.multi_run import render_comparison

            render_comparison(runs, con)
    if env.github_actions:
        for run in runs:
            for line in annotations(run.rep):
                print(line, flush=True)

    try:
        if html is not None:
            if len(runs) == 1:
                from grokwatch.report.html import build_html

                write_atomic(html, build_html(runs[0].rep, runs[0].result, steps, runs[0].boot))
            else:
                from grokwatch.report.multi_run import build_multi_html

                write_atomic(html, build_multi_html(runs, steps))
        md = None
        if markdown is not None or env.step_summary:
            md = "\n".join(to_markdown(run.rep) for run in runs)
            if len(runs) > 1:
                from grokwatch.report.multi_run import comparison_markdown

                md = comparison_markdown(runs) + "\n" + md
        if md_stdout:
            sys.stdout.write(md)
        elif markdown is not None:
            write_atomic(markdown, md)
        summary = env.step_summary
        if summary:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(md + "\n")
        if json_out is not None:
            from grokwatch.report.export import runs_json

            text = runs_json(runs)
            if json_stdout:
                sys.stdout.write(text)
            else:
                write_atomic(json_out, text)
        if figures is not None:
            from grokwatch.report.export import write_figures

            write_figures(figures, runs, figure_format.value, steps)
    except OSError as e:  # the paths were checked before the scan: a disk filling up, a race
        error_line(f"cannot write {e.filename or ''}: {e.strerror or e}")
        raise typer.Exit(ExitCode.USAGE) from None
    sys.stdout.flush()

    if missing:
        raise typer.Exit(ExitCode.NO_CHECKPOINTS)
    if bad:
        raise typer.Exit(ExitCode.BAD_INPUT)
    hits = [(run, c) for run in runs for c in run.rep.at_or_above(fail_on.value)]
    if hits:
        run, first = hits[0]
        where = f"{run.name}: " if len(runs) > 1 else ""
        msg = (
            f"--fail-on {fail_on.value}: {len(hits)} checkpoint(s) at or above it, first {where}{first.label} "
            f"({first.rel})"
        )
        if exit_zero:
            warn_line(msg + "; exiting 0 (--exit-zero)")
            return
        error_line(msg)
        raise typer.Exit(ExitCode.FINDINGS)
