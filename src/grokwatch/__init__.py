"""grokwatch: audit a training run's checkpoints with Heavy-Tailed Self-Regularization.

Library use (the CLI is a thin layer over this):

    import grokwatch
    result = grokwatch.scan_folder("runs/mnist")   # ScanResult: .records, .errors, .checkpoints
    for rec in result:                               # iterates over its LayerRecords
        print(rec.step, rec.layer, rec.alpha, rec.phase)
    grokwatch.analyze_matrix(W)                      # every number for one weight matrix (numpy or torch)

Attributes are imported lazily so `grokwatch --help` does not pay for numpy.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "scan_folder": "grokwatch.scan",
    "ScanResult": "grokwatch.scan",
    "Settings": "grokwatch.analyze",
    "analyze_matrix": "grokwatch.analyze",
    "LayerRecord": "grokwatch.records",
    "ww_fit": "grokwatch.fit",
    "fit_tail": "grokwatch.fit",
    "esd": "grokwatch.spectra",
    "discover": "grokwatch.checkpoints",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grokwatch' has no attribute {name!r}")
