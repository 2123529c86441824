"""`grokwatch watch`: follow a folder a training job is writing and analyse each checkpoint once."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from grokwatch.cli.common import environment, error_line, warn_line
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
    SeedOpt,
    SplitQkvOpt,
    TrapMinOpt,
    rules_from,
    settings_from,
)
from grokwatch.errors import ExitCode

__all__ = ["LineSink", "LiveSink", "WatchFormat", "watch"]


class WatchFormat(str, Enum):
    table = "table"
    jsonl = "jsonl"


class Level(str, Enum):
    none = "none"
    trap = "trap"
    anti = "anti-grokking"


class LineSink:
    """Not a terminal: one plain line per checkpoint (or JSONL records), flushed; notes on stderr."""

    def __init__(self, out=None, jsonl: bool = False):
        self.out = out or sys.stdout
        self.jsonl = jsonl
        self.cautioned = False  # the transformer caveat is said once, on stderr

    def checkpoint(self, st) -> None:
        from grokwatch.monitor.view import caveat, jsonl_lines, plain_line

        if not self.cautioned and (line := caveat([st])):
            self.cautioned = True
            print(f"grokwatch: caveat: {line}", file=sys.stderr, flush=True)
        lines = jsonl_lines(st) if self.jsonl else [plain_line(st)]
        self.out.write("".join(line + "\n" for line in lines))
        self.out.flush()

    def error(self, line: str) -> None:
        error_line(line)

    def status(self, text: str) -> None:
        print(f"grokwatch: {text}", file=sys.stderr, flush=True)

    def deleted(self, rel: str) -> None:
        print(f"grokwatch: {rel} was deleted (its results stay in the timeline)", file=sys.stderr, flush=True)


class LiveSink:
    """A terminal: the rich live view, refreshed a few times a second."""

    def __init__(self, view):
        self.view = view

    def attach(self, run) -> None:
        self.view.run = run

    def checkpoint(self, st) -> None:
        import time

        self.view.last_arrival = time.monotonic()
        self.view.status = f"following ({st.label} analysed{', cached' if st.cached else ''})"

    def error(self, line: str) -> None:
        self.view.errors.append(line)

    def status(self, text: str) -> None:
        self.view.status = text

    def deleted(self, rel: str) -> None:
        self.view.status = f"{rel} deleted"


def watch(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Folder a training job writes checkpoints to (it may not exist yet).", show_default=False
        ),
    ],
    fmt: Annotated[
        WatchFormat,
        typer.Option(
            "--format",
            "-f",
            envvar="GROKWATCH_WATCH_FORMAT",
            help="table: a live view on a terminal, one plain line per checkpoint otherwise; "
            "jsonl: one JSON record per (checkpoint, layer), flushed as analysed.",
        ),
    ] = WatchFormat.table,
    exit_on: Annotated[
        Level,
        typer.Option(
            "--exit-on",
            envvar="GROKWATCH_EXIT_ON",
            help="Exit 1 at the first checkpoint at or above this level (trap = any correlation trap "
            "or anti-grokking).",
        ),
    ] = Level.none,
    on_alert: Annotated[
        str | None,
        typer.Option(
            "--on-alert",
            help="Shell command run (and waited for) at each checkpoint at or above --alert-on, with "
            "GROKWATCH_CHECKPOINT, GROKWATCH_STEP, GROKWATCH_LEVEL, GROKWATCH_PHASE and GROKWATCH_REASON set.",
            show_default=False,
        ),
    ] = None,
    alert_on: Annotated[
        Level, typer.Option("--alert-on", help="Level at which --on-alert runs.")
    ] = Level.anti,
    until: Annotated[
        int | None,
        typer.Option(
            "--until", min=0, help="Exit 0 after a checkpoint at or past this step.", show_default=False
        ),
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option(
            "--idle-exit",
            min=0.0,
            help="Exit when no new checkpoint arrived for this many seconds.",
            show_default=False,
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            min=0.0,
            help="A checkpoint written in place counts once its size and mtime are unchanged this long "
            "(seconds); one that appears by rename is read at once.",
        ),
    ] = 1.0,
    poll: Annotated[
        float,
        typer.Option(
            "--poll", min=0.01, help="Seconds between looks at the folder when no filesystem event comes."
        ),
    ] = 0.5,
    events: Annotated[
        bool,
        typer.Option(
            "--events/--polling",
            envvar="GROKWATCH_EVENTS",
            help="Filesystem events (watchfiles) or plain polling (e.g. network filesystems).",
        ),
    ] = True,
    traps: Annotated[
        bool,
        typer.Option(
            "--traps/--no-traps", help="Count correlation traps (they feed the phase rule and the levels)."
        ),
    ] = True,
    fit: FitOpt = DEFAULT_SETTINGS.fit,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    layers: LayersOpt = None,
    exclude: ExcludeOpt = None,
    base: BaseOpt = None,
    embeddings: EmbeddingsOpt = DEFAULT_SETTINGS.embeddings,
    split_qkv: SplitQkvOpt = DEFAULT_SETTINGS.split_qkv,
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
    """Follow a folder while it is being written and analyse each new checkpoint once.

    Each checkpoint is analysed once it is complete (size and mtime stable for --settle
    seconds, or renamed into place), with the same cache and phase labels as `report`:
    restarting recomputes nothing and `report` afterwards is instant. On a terminal: a
    live view (phase timeline, alpha per layer of the latest checkpoints, traps, the
    current label and its evidence); otherwise one line per checkpoint. Deleted
    checkpoints (save_total_limit rotation) stay in the timeline; a missing folder is
    waited for. Under GITHUB_ACTIONS=true, prints a ::warning:: line per anti-grokking
    checkpoint.

    Exit codes: 0 Ctrl-C, --until or --idle-exit reached; 1 a checkpoint at or above
    --exit-on; 2 usage error; 3 (at --until / --idle-exit) some file stayed unreadable.
    """
    from grokwatch.monitor.alerts import Alerts
    from grokwatch.monitor.run import follow_folder

    settings = settings_from(locals())
    rules = rules_from(locals())
    env = environment()
    live = fmt == WatchFormat.table and env.stdout_isatty and not env.ci
    alerts = Alerts(
        exit_on=exit_on.value,
        command=on_alert,
        alert_on=alert_on.value,
        github=env.github_actions,
        name=directory.name or str(directory),
        warn=warn_line,
        emit=lambda line: print(line, flush=True),
    )
    kwargs = dict(
        cache=(cache_path or True) if cache else False,
        alerts=alerts,
        until=until,
        idle_exit=idle_exit,
        settle=settle,
        poll=poll,
        events=events,
    )
    try:
        if live:
            from rich.live import Live

            from grokwatch.monitor.view import LiveView

            view = LiveView(directory)
            with Live(view, console=env.stdout_console(), refresh_per_second=2, transient=False):
                outcome = follow_folder(directory, LiveSink(view), settings, rules, **kwargs)
        else:
            outcome = follow_folder(
                directory, LineSink(jsonl=fmt == WatchFormat.jsonl), settings, rules, **kwargs
            )
    except KeyboardInterrupt:
        print("grokwatch: interrupted; stopped watching", file=sys.stderr, flush=True)
        raise typer.Exit(ExitCode.OK) from None
    if outcome.reason == "exit-on":
        st = outcome.alert
        error_line(f"--exit-on {exit_on.value}: {st.label} ({st.rel}) is {st.level}: {st.reason}")
        raise typer.Exit(ExitCode.FINDINGS)
    if outcome.errors:
        raise typer.Exit(ExitCode.BAD_INPUT)


class BackgroundWatch:
    """`train --watch`: the `watch` view of a run folder, in a thread beside the training loop.

    On a terminal the live view replaces the training progress bar (the status line
    shows the training progress instead); otherwise one plain line per checkpoint.
    `stop()` takes one last look at the folder (the final checkpoint) and ends the view.
    """

    def __init__(self, folder: Path, live: bool, settings=None, rules=None):
        import threading

        from grokwatch.settings import Settings

        self.stop_event = threading.Event()
        self.view = None
        self._live = None
        if live:
            from rich.live import Live

            from grokwatch.monitor.view import LiveView

            self.view = LiveView(folder)
            self._live = Live(self.view, console=environment().stdout_console(), refresh_per_second=2)
            sink = LiveSink(self.view)
        else:
            sink = LineSink()
        self.outcome = None

        def target() -> None:
            from grokwatch.monitor.run import follow_folder

            self.outcome = follow_folder(
                folder, sink, settings or Settings(traps=True), rules, settle=1.0, stop=self.stop_event
            )

        self._thread = threading.Thread(target=target, name="grokwatch-watch", daemon=True)

    def start(self) -> BackgroundWatch:
        if self._live is not None:
            self._live.start()
        self._thread.start()
        return self

    def status(self, text: str) -> None:
        if self.view is not None:
            self.view.status = text

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join()
        if self._live is not None:
            self._live.stop()
