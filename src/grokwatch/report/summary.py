"""The report as text: a rich summary for the terminal, Markdown for $GITHUB_STEP_SUMMARY,
and GitHub Actions `::warning::` annotations. The HTML lives in `report.html`."""

from __future__ import annotations

from grokwatch.phases import ANTI, GROK, PRE, UNKNOWN
from grokwatch.report.model import MAX_RANGES, Report, facts

__all__ = ["PHASE_STYLE", "annotations", "render_terminal", "to_markdown"]

# ---------------------------------------------------------------- terminal

PHASE_STYLE = {PRE: "yellow", GROK: "green", ANTI: "bold red", UNKNOWN: "dim"}


def render_terminal(rep: Report, console) -> None:
    """The default output: a rich summary (plain text when piped or NO_COLOR)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]grokwatch report[/] {escape(rep.name)}")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for k, v in facts(rep):
        style = PHASE_STYLE.get(v) if k == "level" else None
        grid.add_row(k, f"[{style}]{escape(v)}[/]" if style else escape(v))
    console.print(grid)
    if not rep.timeline:
        return
    t = Table(title="phase timeline", box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("steps", justify="right", no_wrap=True)
    t.add_column("phase", no_wrap=True)
    t.add_column("ckpts", justify="right", no_wrap=True)
    if rep.has_accuracy:
        t.add_column("test acc", justify="right", no_wrap=True)
    t.add_column("evidence (first checkpoint of the range)")
    for pr in rep.timeline[:MAX_RANGES]:
        st = PHASE_STYLE.get(pr.phase, "")
        row = [pr.steps, f"[{st}]{pr.phase}[/]", str(pr.count)]
        if rep.has_accuracy:
            accs = [c.test_acc for c in rep.checkpoints[pr.start : pr.end + 1] if c.test_acc is not None]
            row.append(f"{min(accs):.3f}–{max(accs):.3f}" if accs else "-")
        row.append(escape(pr.reason))
        t.add_row(*row)
    if len(rep.timeline) > MAX_RANGES:
        t.caption = (
            f"{len(rep.timeline) - MAX_RANGES} more ranges not shown (the phase flips often; see --html)"
        )
    console.print(t)


# ---------------------------------------------------------------- Markdown and GitHub annotations


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(rep: Report) -> str:
    """A compact summary for $GITHUB_STEP_SUMMARY: facts table, then the phase timeline table."""
    lines = [f"### grokwatch report: {_md(rep.name)}", "", "| item | value |", "|---|---|"]
    lines += [f"| {k} | {_md(v)} |" for k, v in facts(rep)]
    if not rep.timeline:
        return "\n".join(lines) + "\n"
    lines += ["", "| steps | phase | checkpoints | evidence |", "|---|---|---|---|"]
    lines += [
        f"| {pr.steps} | {pr.phase} | {pr.count} | {_md(pr.reason)} |" for pr in rep.timeline[:MAX_RANGES]
    ]
    if len(rep.timeline) > MAX_RANGES:
        lines += ["", f"{len(rep.timeline) - MAX_RANGES} more ranges not shown."]
    return "\n".join(lines) + "\n"


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def annotations(rep: Report) -> list[str]:
    """One GitHub Actions `::warning::` line per anti-grokking checkpoint."""
    title = _escape_prop(f"grokwatch: anti-grokking in {rep.name}")
    return [
        f"::warning title={title}::{_escape_data(f'{c.label} ({c.rel}): {c.reason}')}"
        for c in rep.checkpoints
        if c.phase == ANTI
    ]
