"""grokwatch: audit a training run's checkpoints with Heavy-Tailed Self-Regularization.

Library use (the CLI is a thin layer over this; docs/python.md walks through it):

    import grokwatch
    result = grokwatch.scan_folder("runs/mnist")   # ScanResult('runs/mnist': 40 checkpoints, 3 layers, 0 errors)
    result.to_pandas()                               # one row per (checkpoint, layer): the columns of --format csv
    result.alpha_table()                             # step x layer table of alpha
    result.phases()                                  # one row per checkpoint: phase and its evidence
    grokwatch.build_report(result).warning           # the early warning of `grokwatch report`
    grokwatch.analyze_matrix(W)                      # the LayerRecord of one weight matrix (numpy or torch)
    monitor = grokwatch.Monitor(model, every=500)    # in a training loop: monitor.step() per step

Layout: `spectral/` (one layer's numbers), `checkpoints/` (files on disk and the
cache), `scan`/`analyze`/`pool`/`phases` (the pipeline), `report/` (what is
shown), `cli/` (the command), `train/` (the runs to audit).
Attributes are imported lazily so `grokwatch --help` does not pay for numpy; the
`TYPE_CHECKING` block below shows IDEs and type checkers the same names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "scan_folder": "grokwatch.scan",
    "ScanResult": "grokwatch.scan",
    "Settings": "grokwatch.settings",
    "PhaseRules": "grokwatch.settings",
    "analyze_matrix": "grokwatch.analyze",
    "LayerRecord": "grokwatch.records",
    "ww_fit": "grokwatch.spectral.powerlaw",
    "fit_tail": "grokwatch.spectral.powerlaw",
    "esd": "grokwatch.spectral.esd",
    "find_traps": "grokwatch.spectral.traps",
    "discover": "grokwatch.checkpoints.discover",
    "build_report": "grokwatch.report.model",
    "Monitor": "grokwatch.callbacks.monitor",
}

__all__ = [
    "LayerRecord",
    "Monitor",
    "PhaseRules",
    "ScanResult",
    "Settings",
    "__version__",
    "analyze_matrix",
    "build_report",
    "discover",
    "esd",
    "find_traps",
    "fit_tail",
    "scan_folder",
    "ww_fit",
]

if TYPE_CHECKING:
    from grokwatch.analyze import analyze_matrix
    from grokwatch.callbacks.monitor import Monitor
    from grokwatch.checkpoints.discover import discover
    from grokwatch.records import LayerRecord
    from grokwatch.report.model import build_report
    from grokwatch.scan import ScanResult, scan_folder
    from grokwatch.settings import PhaseRules, Settings
    from grokwatch.spectral.esd import esd
    from grokwatch.spectral.powerlaw import fit_tail, ww_fit
    from grokwatch.spectral.traps import find_traps


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grokwatch' has no attribute {name!r}")
