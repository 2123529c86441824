"""`grokwatch train` as a library: produce checkpoint folders that `grokwatch scan` audits.

    from grokwatch.train import TrainConfig, train
    result = train(TrainConfig(task="modadd", steps=2000, p=59), "runs/modadd")

Reproduces the grokking setups of Prakash & Martin (arXiv 2506.04434) and Omnigrok
(arXiv 2210.01117): an init-scaled MLP on 1,000 MNIST samples, and modular arithmetic.
Runs are resumable (same folder, larger `steps`) and exact on CPU.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from grokwatch.errors import ConfigMismatchError
from grokwatch.train.schedule import TrainConfig, config_differences, log_schedule, parse_steps

if TYPE_CHECKING:
    from grokwatch.train.data import Dataset

__all__ = ["DataError", "Plan", "TrainConfig", "TrainResult", "log_schedule", "parse_steps", "plan", "train"]

# progress(step, total_steps, latest_eval_or_None): called a few times a second and after every eval.


def __getattr__(name: str):
    """`DataError` on first use: the data module imports numpy, and `grokwatch --help` imports this package."""
    if name == "DataError":
        from grokwatch.train.data import DataError

        return DataError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ProgressFn = Callable[[int, int, "dict | None"], None]


@dataclass
class TrainResult:
    out: Path
    config: TrainConfig
    data: str
    device: str
    start_step: int  # 0 for a fresh run, the resumed step otherwise
    step: int  # the last step trained
    checkpoints: list[Path] = field(default_factory=list)  # written by this call
    last_eval: dict | None = None
    interrupted: bool = False
    wall_s: float = 0.0
    ms_per_step: float | None = None


@dataclass
class Plan:
    config: TrainConfig
    data: str
    n_train: int
    n_test: int
    model: str
    n_params: int
    device: str
    resume_from: int
    checkpoint_steps: list[int]
    ms_per_step: float
    eval_s: float

    @property
    def estimated_s(self) -> float:
        remaining = max(0, self.config.steps - self.resume_from)
        return remaining * self.ms_per_step / 1000 + len(self.checkpoint_steps) * self.eval_s


def _describe_model(model) -> str:
    import torch

    if hasattr(model, "describe"):
        return model.describe()
    parts = []
    for name, mod in model.named_children():
        if isinstance(mod, torch.nn.Linear):
            parts.append(f"{name} {mod.in_features}->{mod.out_features}")
        elif isinstance(mod, torch.nn.Embedding):
            parts.append(f"{name} {mod.num_embeddings}x{mod.embedding_dim}")
    return f"{type(model).__name__}(" + ", ".join(parts) + ")"


def _check_folder(out: Path, cfg: TrainConfig, data: Dataset) -> dict | None:
    """The saved resume state if `out` holds a compatible run; raise if it holds another one."""
    from grokwatch.train.loop import STATE_NAME, read_state

    state = read_state(out) if out.is_dir() else None
    if state is None:
        if out.is_dir() and any(out.glob("step_*.safetensors")):
            raise ConfigMismatchError(
                f"{out} holds checkpoints but no {STATE_NAME}, so the run cannot be "
                "resumed; use an empty --out folder"
            )
        return None
    old = TrainConfig.from_json(state["config"])
    diffs = config_differences(old, cfg)
    if state.get("data_fingerprint") != data.fingerprint:
        diffs.append(f"data: fingerprint {state.get('data_fingerprint')} -> {data.fingerprint}")
    if diffs:
        raise ConfigMismatchError(
            f"{out} holds a run with a different config ({'; '.join(diffs)}); "
            "use another --out folder or the same options"
        )
    return state


def plan(config: TrainConfig, out: str | Path | None = None, timing_s: float = 0.5) -> Plan:
    """What `train` would do, with a wall-time estimate from a short timing; writes nothing."""
    from grokwatch.train.data import load_dataset
    from grokwatch.train.loop import Trainer, resolve_device, time_steps

    cfg = config.resolved()
    data = load_dataset(cfg)
    state = _check_folder(Path(out), cfg, data) if out is not None else None
    start = int(state["step"]) if state else 0
    device = resolve_device(cfg.device)
    import torch

    trainer = Trainer(cfg, data, device)
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        sec = time_steps(trainer, seconds=timing_s)
        t0 = time.perf_counter()
        trainer.evaluate()
        eval_s = time.perf_counter() - t0
    finally:
        torch.set_num_threads(old_threads)
    steps = [s for s in log_schedule(cfg.steps, cfg.checkpoints) if s > start]
    return Plan(
        cfg,
        data.description,
        len(data.y_train),
        len(data.y_test),
        _describe_model(trainer.model),
        sum(p.numel() for p in trainer.model.parameters()),
        str(device),
        start,
        steps,
        sec * 1000,
        eval_s,
    )


def train(
    config: TrainConfig, out: str | Path, progress: ProgressFn | None = None, data: Dataset | None = None
) -> TrainResult:
    """Train (or resume) the run in `out`, writing log-spaced checkpoints; see the module docstring.

    Raises DataError (bad or missing data), ConfigMismatchError (`out` holds another run) and
    ValueError (invalid options). Ctrl-C saves a checkpoint and returns `interrupted=True`.
    """
    import torch

    from grokwatch.train.data import load_dataset
    from grokwatch.train.loop import (
        Interrupt,
        Trainer,
        read_metrics,
        resolve_device,
        write_checkpoint,
        write_metrics,
        write_state,
    )

    cfg = config.resolved()
    out = Path(out)
    data = data if data is not None else load_dataset(cfg)
    state = _check_folder(out, cfg, data)
    device = resolve_device(cfg.device)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, data, device)
    if state is not None:
        trainer.load_state_dict(state)
    start = trainer.step
    result = TrainResult(out, cfg, data.description, str(device), start, start)
    metrics = read_metrics(out, start)
    if metrics:
        result.last_eval = json.loads(metrics[-1])
    schedule = [s for s in log_schedule(cfg.steps, cfg.checkpoints) if s > start]

    def save() -> None:
        ev = trainer.evaluate()
        ev.update(trainer.measures())
        result.checkpoints.append(write_checkpoint(out, trainer, ev))
        line = {"step": trainer.step, **ev, "wall_s": round(time.perf_counter() - t0, 3)}
        metrics.append(json.dumps(line))
        write_metrics(out, metrics)
        write_state(out, trainer)
        result.last_eval = line

    t0 = time.perf_counter()
    train_time, chunk = 0.0, 16
    if cfg.flush_denormal and device.type == "cpu":
        torch.set_flush_denormal(True)
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        with Interrupt() as stop:
            for target in schedule:
                while trainer.step < target and not stop():
                    n = min(chunk, target - trainer.step)
                    t1 = time.perf_counter()
                    ran = trainer.train_steps(n, stop)
                    dt = time.perf_counter() - t1
                    train_time += dt
                    if ran == n and dt > 0:  # aim for ~0.1 s between progress updates
                        chunk = max(1, min(100_000, int(n * 0.1 / dt) or 1))
                    if progress is not None:
                        progress(trainer.step, cfg.steps, result.last_eval)
                if stop():
                    break
                save()
                if progress is not None:
                    progress(trainer.step, cfg.steps, result.last_eval)
            if (
                stop()
                and trainer.step > start
                and (not result.checkpoints or result.last_eval["step"] != trainer.step)
            ):
                save()
            result.interrupted = stop()
    finally:
        if cfg.flush_denormal and device.type == "cpu":
            torch.set_flush_denormal(False)
        torch.set_num_threads(old_threads)
    result.step = trainer.step
    result.wall_s = time.perf_counter() - t0
    if trainer.step > start:
        result.ms_per_step = 1000 * train_time / (trainer.step - start)
    return result
