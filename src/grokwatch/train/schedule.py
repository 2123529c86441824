"""The run plan: step-count parsing, the log-spaced checkpoint schedule and the run config.

Grokking unfolds over decades of steps (train accuracy saturates at ~10^3, test accuracy
climbs at ~10^4-10^5, anti-grokking sets in at ~10^6-10^7), so checkpoints are spaced
evenly in log(step), not linearly. The config lives here, next to the schedule, because
it is what decides whether a folder may be resumed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields, replace

__all__ = [
    "ARCHS",
    "LOSSES",
    "MODELS",
    "OPS",
    "RESUMABLE_FIELDS",
    "TASKS",
    "TrainConfig",
    "config_differences",
    "log_schedule",
    "modular_train_size",
    "parse_steps",
]

TASKS = ("mnist", "modadd")
OPS = ("add", "sub", "mul", "div")
MODELS = ("mlp", "transformer")
LOSSES = ("mse", "ce", "stablemax")
ARCHS = ("embed", "onehot")

# Fields that may differ between the first run and a resume of the same folder: how far to
# train, how densely to checkpoint, where to compute, where the data files happen to live
# (the data itself is compared through its fingerprint).
# `preset` only supplies defaults: the resolved values it led to are what is compared.
RESUMABLE_FIELDS = frozenset({"steps", "checkpoints", "device", "data_dir", "threads", "preset"})

_STEPS_RE = re.compile(r"^\s*(\d[\d_]*)(?:\.(\d*))?(?:[eE]\+?(\d+))?\s*$")


def parse_steps(text: str | int) -> int:
    """Parse a step count: `1e7`, `10000000`, `10_000_000`, `2.5e6`.

    Why not `int(float(text))`: floats silently round large or fractional counts; here a
    count that is not a whole positive number is an error, and the arithmetic is exact.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _STEPS_RE.match(str(text))
        if not m or m.group(1).endswith("_") or "__" in m.group(1):
            raise ValueError(f"not a step count: {text!r} (use e.g. 100000, 100_000 or 1e5)")
        whole = m.group(1).replace("_", "")
        frac = (m.group(2) or "").rstrip("0")
        exp = int(m.group(3) or 0)
        if len(frac) > exp:
            raise ValueError(f"not a whole number of steps: {text!r}")
        value = int(whole + frac) * 10 ** (exp - len(frac))
    if value < 1:
        raise ValueError(f"the step count must be at least 1, got {text!r}")
    return value


def log_schedule(total: int, n: int) -> list[int]:
    """About `n` distinct checkpoint steps, log-spaced from 1 to `total`, always ending at `total`.

    Rounding `geomspace` collapses the first decades into duplicates (1, 1, 1, 2, 2, ...) and
    returns far fewer than `n` steps; here each step is at least the previous one plus one,
    so the early steps are consecutive and the rest follow the geometric grid.
    """
    if total < 1:
        raise ValueError("total must be >= 1")
    n = max(1, min(int(n), total))
    if n == 1:
        return [total]
    import numpy as np  # here, not at the top: `grokwatch --help` imports this module

    grid = np.exp(np.linspace(0.0, math.log(total), n))
    steps: list[int] = []
    for v in grid:
        s = max(int(round(v)), steps[-1] + 1 if steps else 1)
        steps.append(min(s, total))
    steps[-1] = total
    return sorted(set(steps))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. `None` means "the task's default" (see `resolved`).

    Defaults follow Omnigrok's MNIST recipe (AdamW lr 1e-3, float32, init x8, MSE, batch 200,
    1,000 training samples), which the Prakash & Martin paper builds on; the paper itself
    reports lr 5e-4 and float64 (use `lr=5e-4, dtype="float64"` to follow it).
    """

    task: str = "mnist"
    steps: int = 100_000
    seed: int = 0
    checkpoints: int = 100
    device: str = "auto"
    lr: float | None = None
    wd: float | None = None
    beta2: float | None = None
    batch_size: int | None = None
    loss: str | None = None
    init_scale: float | None = None
    dtype: str = "float32"
    width: int | None = None
    flush_denormal: bool = True
    # CPU threads for torch (0 = torch's default, all cores). One is the default because this
    # model's matmuls are small: on an idle 2-core machine two threads gain little, and on a
    # busy one OpenMP threads spin-wait on each other (measured 30-250 ms/step vs 3-6 ms).
    threads: int = 1
    # mnist
    data_dir: str | None = None
    train_size: int = 1000
    # modadd
    p: int = 97
    op: str = "add"
    train_frac: float = 0.5
    embed_dim: int = 128
    # modadd --model transformer (train/transformer.py); `width` is d_model. None = Power et al.'s
    # values (see _transformer_defaults).
    model: str = "mlp"
    layers: int | None = None
    heads: int | None = None
    d_mlp: int | None = None
    layer_norm: bool | None = None
    warmup: int | None = None  # linear lr warm-up steps, then constant; None = 10 transformer, 0 MLP
    preset: str | None = None  # the recipe (train/presets.py) the defaults came from, for the record
    # Prieto et al. ("Grokking at the edge of numerical stability") and Doshi et al. (corrupted labels);
    # see grokwatch.train.losses / perp_grad / presets
    arch: str = (
        "embed"  # modadd: "embed" (shared table) or "onehot" (one-hot a, b -> 2 bias-free hidden layers)
    )
    perp_grad: bool = False  # project each gradient orthogonally to its weight before AdamW
    adam_eps: float = 1e-8
    corrupt: float = 0.0  # modadd: fraction of training labels replaced by a seeded wrong answer

    def resolved(self) -> TrainConfig:
        """Fill task-dependent defaults and validate; the result is what gets stored."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        mnist = self.task == "mnist"
        if self.model == "transformer" and not mnist:
            self = _transformer_defaults(self)  # its None fields filled, so the line below keeps them
        cfg = replace(
            self,
            lr=self.lr if self.lr is not None else (1e-3 if mnist else 3e-3),
            wd=self.wd if self.wd is not None else (0.0 if mnist else 1.0),
            beta2=self.beta2 if self.beta2 is not None else (0.999 if mnist else 0.98),
            batch_size=self.batch_size if self.batch_size is not None else (200 if mnist else 0),
            loss=self.loss if self.loss is not None else ("mse" if mnist else "ce"),
            init_scale=self.init_scale if self.init_scale is not None else (8.0 if mnist else 1.0),
            width=self.width if self.width is not None else (200 if mnist else 256),
        )
        problems = []
        if cfg.loss not in LOSSES:
            problems.append(f"--loss must be one of {', '.join(LOSSES)}, not {cfg.loss!r}")
        if cfg.arch not in ARCHS:
            problems.append(f"--arch must be one of {', '.join(ARCHS)}, not {cfg.arch!r}")
        if mnist and (cfg.arch != "embed" or cfg.corrupt):
            problems.append("--arch and --corrupt apply to --task modadd only")
        if not (0.0 <= cfg.corrupt < 1.0) or not cfg.adam_eps > 0:
            problems.append("--corrupt must be in [0, 1) and --adam-eps > 0")
        if cfg.dtype not in ("float32", "float64"):
            problems.append(f"--dtype must be float32 or float64, not {cfg.dtype!r}")
        if cfg.device not in ("auto", "cpu", "cuda"):
            problems.append(f"--device must be auto, cpu or cuda, not {cfg.device!r}")
        if cfg.op not in OPS:
            problems.append(f"--op must be one of {', '.join(OPS)}, not {cfg.op!r}")
        if cfg.threads < 0:
            problems.append("--threads must be >= 0 (0 = torch's default)")
        if cfg.steps < 1 or cfg.checkpoints < 1:
            problems.append("--steps and --checkpoints must be at least 1")
        if not (0.0 <= cfg.beta2 < 1.0):
            problems.append("--beta2 must be in [0, 1)")
        if cfg.lr <= 0 or cfg.wd < 0 or cfg.batch_size < 0 or cfg.width < 1:
            problems.append("--lr must be > 0, --wd >= 0, --batch-size >= 0 (0 = full batch), --width >= 1")
        if mnist and cfg.train_size < 10:
            problems.append("--train-size must be at least 10 (one per class)")
        if not mnist and not (0.0 < cfg.train_frac < 1.0):
            problems.append("--train-frac must be between 0 and 1")
        if not mnist and cfg.p < 2:
            problems.append("--p must be at least 2")
        if not mnist and cfg.op == "div" and not _is_prime(cfg.p):
            problems.append(f"--op div needs a prime --p (every nonzero b invertible); {cfg.p} is not prime")
        problems += _model_problems(cfg)
        if problems:
            raise ValueError("; ".join(problems))
        return cfg

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def identity(self) -> dict:
        """The fields a resumed run must share with the run that wrote the folder."""
        ident = {k: v for k, v in asdict(self).items() if k not in RESUMABLE_FIELDS}
        if self.task == "mnist":
            for k in ("p", "op", "train_frac", "embed_dim", "arch", "corrupt"):
                ident.pop(k)
        else:
            ident.pop("train_size")
        if self.model == "transformer":
            ident.pop("embed_dim")
        return ident


def modular_train_size(p: int, op: str, train_frac: float) -> int:
    """How many pairs `data.modular_data` puts in the training set (for the default batch size)."""
    total = p * (p - 1) if op == "div" else p * p
    return max(1, min(total - 1, int(round(train_frac * total))))


def _transformer_defaults(c: TrainConfig) -> TrainConfig:
    """Power et al.'s recipe (openai/grok's defaults) for every option left at None.

    AdamW lr 1e-3, betas (0.9, 0.98), weight decay 1, 10 warm-up steps, batch
    min(512, ceil(half the training set)), cross-entropy, default init; 2 layers, d_model 128
    (`width`), 4 heads, d_mlp 4 x width, LayerNorm.
    """
    width = c.width if c.width is not None else 128
    ok = c.p >= 2 and c.op in OPS and 0.0 < c.train_frac < 1.0  # else validation reports it
    half = -(-modular_train_size(c.p, c.op, c.train_frac) // 2) if ok else 1

    def pick(value, default):
        return value if value is not None else default

    return replace(
        c,
        lr=pick(c.lr, 1e-3),
        wd=pick(c.wd, 1.0),
        beta2=pick(c.beta2, 0.98),
        batch_size=pick(c.batch_size, min(512, half)),
        loss=pick(c.loss, "ce"),
        init_scale=pick(c.init_scale, 1.0),
        width=width,
        layers=pick(c.layers, 2),
        heads=pick(c.heads, 4),
        d_mlp=pick(c.d_mlp, 4 * width),
        layer_norm=pick(c.layer_norm, True),
        warmup=pick(c.warmup, 10),
    )


def _model_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    if cfg.model not in MODELS:
        problems.append(f"--model must be one of {', '.join(MODELS)}, not {cfg.model!r}")
    elif cfg.model == "transformer" and cfg.task != "modadd":
        problems.append("--model transformer needs --task modadd")
    elif cfg.model == "transformer" and cfg.arch != "embed":
        problems.append(
            f"--arch {cfg.arch} chooses the MLP's inputs; it does not apply to --model transformer"
        )
    if cfg.warmup is not None and cfg.warmup < 0:
        problems.append("--warmup must be >= 0")
    if cfg.model == "transformer" and cfg.task == "modadd":
        if min(cfg.layers, cfg.heads, cfg.d_mlp) < 1:
            problems.append("--layers, --heads and --d-mlp must be at least 1")
        elif cfg.width % cfg.heads:
            problems.append(f"--width {cfg.width} must be divisible by --heads {cfg.heads}")
    return problems


def config_differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """Human-readable `field: old -> new` lines for a refused resume."""
    a, b = old.identity(), new.identity()
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))
