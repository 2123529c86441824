"""Plain result records shared by scan, traps and report.

One `LayerRecord` per (checkpoint, layer). Records are flat so they serialize to
JSON, CSV and SQLite without translation; optional fields stay `None` until the
analysis that fills them has run (e.g. traps).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["COLUMNS", "LayerRecord"]


@dataclass
class LayerRecord:
    """The numbers of one layer of one checkpoint (what a row of `grokwatch scan --format csv` holds).

    rec = scan_folder("runs/mnist").records[0]
    rec.layer, rec.alpha, rec.phase
    """

    checkpoint: str  # path relative to the scanned folder
    step: int | None
    layer: str  # tensor name in the file, prefixes like `module.` stripped
    shape: list[int]  # the tensor's shape as stored
    N: int = 0  # larger side of the matrix analysed
    M: int = 0  # smaller side = number of eigenvalues
    num_evals: int = 0  # eigenvalues kept (> 1e-5)
    # power-law fit (WeightWatcher default unless `fit` says otherwise)
    fit: str = "ww"
    alpha: float | None = None
    xmin: float | None = None
    D: float | None = None
    n_tail: int | None = None  # WeightWatcher's num_pl_spikes
    sigma: float | None = None
    weak_fit: bool = False  # n_tail < 10: the alpha is not to be trusted alone
    # norms and shape of the spectrum
    lambda_max: float | None = None
    alpha_weighted: float | None = None
    log_spectral_norm: float | None = None
    log_norm: float | None = None  # log10 Frobenius norm squared = log10 sum(lambda)
    stable_rank: float | None = None
    entropy: float | None = None
    # weight-only competing measures (grokwatch.measures): Frobenius norm, -sum |w| log|w|
    l2_norm: float | None = None
    abs_weight_entropy: float | None = None
    # correlation traps (filled by traps / scan --traps)
    n_traps: int | None = None
    lambda_plus: float | None = None
    threshold: float | None = None
    rand_lambda_max: float | None = None
    ks_mp: float | None = None
    # checkpoint level
    phase: str | None = None
    phase_reason: str | None = None
    train_acc: float | None = None
    test_acc: float | None = None
    error: str | None = None
    # where the layer came from, when it is not a plain tensor of the file: `shared_with` (tied
    # weights, analysed once), `lora` (a peft update B@A), `source_key` (the state dict's wrapper
    # key in a torch file), `step_unit` ("epoch" when the step counts epochs)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None  # JSON has no NaN/Inf
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# The column order of csv: every field json has but `extra` (free-form, not tabular).
COLUMNS = [
    "checkpoint",
    "step",
    "layer",
    "shape",
    "N",
    "M",
    "num_evals",
    "fit",
    "alpha",
    "xmin",
    "D",
    "n_tail",
    "sigma",
    "weak_fit",
    "lambda_max",
    "alpha_weighted",
    "log_spectral_norm",
    "log_norm",
    "stable_rank",
    "entropy",
    "l2_norm",
    "abs_weight_entropy",
    "n_traps",
    "lambda_plus",
    "threshold",
    "rand_lambda_max",
    "ks_mp",
    "phase",
    "phase_reason",
    "train_acc",
    "test_acc",
    "error",
]
