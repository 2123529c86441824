"""What grokwatch shows: the report model of a scanned run and its renderings.

    model.py         build_report: phase timeline, early warning, accuracy agreement, fail-on level
    summary.py       the report as terminal text, Markdown and GitHub annotations
    text.py          records as tables (rich, Markdown), JSON and CSV; the traps table
    html.py          the self-contained HTML report
    run_figures.py   run-level SVG plots (alpha, accuracy, traps against step)
    layer_figure.py  one layer's ESD with its fit beside its shuffled ESD with the MP density

Attributes are imported lazily: rendering pulls in rich or matplotlib only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

_LAZY = {
    "Report": "grokwatch.report.model",
    "build_report": "grokwatch.report.model",
    "facts": "grokwatch.report.model",
    "render_terminal": "grokwatch.report.summary",
    "to_markdown": "grokwatch.report.summary",
    "annotations": "grokwatch.report.summary",
    "build_html": "grokwatch.report.html",
}

__all__ = ["Report", "annotations", "build_html", "build_report", "facts", "render_terminal", "to_markdown"]

if TYPE_CHECKING:
    from grokwatch.report.html import build_html
    from grokwatch.report.model import Report, build_report, facts
    from grokwatch.report.summary import annotations, render_terminal, to_markdown


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grokwatch.report' has no attribute {name!r}")
