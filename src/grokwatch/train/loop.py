"""The training loop: in-memory batches, evaluation at checkpoint steps, atomic writes, exact resume.

Why no DataLoader: MNIST-1k fits in a few MB, and collating 200 samples one by one per step
costs more than the step itself; batches are gathered by index from tensors already on the
device. Why a saved torch.Generator for the data order: resuming from its saved state (plus
the current epoch's permutation and position) replays the very same batches, so a run that
is stopped and resumed ends with the same weights as one that never stopped (on CPU).

On CUDA the step (forward, backward, AdamW) is captured once in a CUDA graph and replayed,
so a step costs a kernel-launch-free replay; that path is UNTESTED (no GPU in development)
and falls back to eager steps if capture fails.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from grokwatch.checkpoints.atomic import write_atomic
from grokwatch.train.data import Dataset
from grokwatch.train.losses import stablemax_cross_entropy
from grokwatch.train.measures import ACT_THRESHOLD, DROP, model_measures
from grokwatch.train.models import build_model
from grokwatch.train.perp_grad import project_gradients_
from grokwatch.train.schedule import TrainConfig

__all__ = [
    "EVAL_CHUNK",
    "Interrupt",
    "METRICS_NAME",
    "STATE_FORMAT",
    "STATE_NAME",
    "Trainer",
    "checkpoint_name",
    "read_metrics",
    "read_state",
    "resolve_device",
    "time_steps",
    "write_checkpoint",
    "write_metrics",
    "write_state",
]

STATE_NAME = "train_state.pt"  # the scanner skips this name
METRICS_NAME = "metrics.jsonl"
STATE_FORMAT = 1
EVAL_CHUNK = 8192


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    return torch.device(name)


class Trainer:
    """Model, optimizer, data tensors and data-order state of one run."""

    def __init__(self, config: TrainConfig, data: Dataset, device: torch.device):
        self.config, self.data, self.device = config, data, device
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        torch.manual_seed(config.seed)
        self.model = build_model(config, self.dtype).to(device)
        cuda = device.type == "cuda"
        # CPU: the fused AdamW kernel (torch >= 2.4) takes 0.2 ms/step here against 0.6 ms for the
        # default per-tensor loop, a third of the whole MNIST step. CUDA: capturable, so the
        # optimizer's step counter lives on the GPU and the step can be graph-captured.
        self.fused = not cuda and _fused_adamw_ok(self.dtype)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.wd,
            betas=(0.9, config.beta2),
            eps=config.adam_eps,
            capturable=cuda,
            fused=True if self.fused else None,
        )
        self._direct_adamw = self.fused  # see _fused_adamw_step
        self.gen = torch.Generator().manual_seed(config.seed + 1)  # data order only
        fdt = self.dtype if config.task == "mnist" else None
        self.x = torch.as_tensor(data.x_train, device=device, dtype=fdt)
        self.y = torch.as_tensor(data.y_train, device=device)
        self.x_test = torch.as_tensor(data.x_test, device=device, dtype=fdt)
        self.y_test = torch.as_tensor(data.y_test, device=device)
        self.mse = config.loss == "mse"
        self.stablemax = config.loss == "stablemax"
        self.perp_grad = config.perp_grad
        idx = data.corrupt_idx
        self.corrupt = (
            None
            if idx is None
            else torch.zeros(len(data.y_train), dtype=torch.bool)
            .index_fill_(0, torch.as_tensor(idx, dtype=torch.long), True)
            .to(device)
        )
        self.y_true = None if data.y_train_true is None else torch.as_tensor(data.y_train_true, device=device)
        self.t = self._targets(self.y)
        self.n = len(self.y)
        bs = config.batch_size
        self.batch = self.n if bs <= 0 or bs >= self.n else bs
        self.perm = torch.empty(0, dtype=torch.long)
        self.pos = self.n  # forces a fresh permutation on the first step
        self.step = 0
        self._graph = None
        self._graph_failed = not cuda  # CUDA graphs only on CUDA; see _capture
        self.warmup = config.warmup or 0
        self._stream = torch.cuda.Stream() if cuda else None

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        if self.mse:  # one-hot targets, as in Omnigrok's MNIST experiments
            return F.one_hot(y, self.data.n_classes).to(self.dtype)
        return y

    def _loss(self, out: torch.Tensor, t: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.mse:
            return F.mse_loss(out, t, reduction=reduction)
        if self.stablemax:
            return stablemax_cross_entropy(out, t, reduction=reduction)
        return F.cross_entropy(out, t, reduction=reduction)

    def _next_indices(self) -> torch.Tensor | None:
        """Indices of the next batch (None for full batch); a new permutation every epoch."""
        if self.batch == self.n:
            return None
        if self.pos + self.batch > self.n:  # drop_last: every batch has the same size
            self.perm = torch.randperm(self.n, generator=self.gen)
            self._perm_dev = self.perm.to(self.device)
            self.pos = 0
        idx = self._perm_dev[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx

    def _eager_step(self, idx: torch.Tensor | None) -> None:
        if idx is None:
            xb, tb = self.x, self.t
        else:
            xb, tb = self.x.index_select(0, idx), self.t.index_select(0, idx)
        loss = self._loss(self.model(xb), tb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.step < self.warmup:  # linear warm-up: step t (1-based) uses lr * t / warmup
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr * (self.step + 1) / self.warmup
        if self.perp_grad:  # edits p.grad in place, so both optimizer paths below see it
            project_gradients_(self.model.parameters())
        if not (self._direct_adamw and _fused_adamw_step(self.optimizer)):
            self.optimizer.step()

    def train_steps(self, count: int, stop: Callable[[], bool] | None = None) -> int:
        """Run up to `count` steps; returns how many ran (fewer if `stop()` turned true)."""
        done = 0
        while done < count:
            if stop is not None and stop():
                break
            idx = self._next_indices()
            if self._graph is None and not self._graph_failed and self.step >= max(3, self.warmup):
                self._capture(idx)
            if self._graph is not None:
                if idx is not None:
                    self._static_idx.copy_(idx)
                self._graph.replay()
            elif self._stream is not None:  # CUDA warm-up steps run on the stream the capture uses
                self._stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self._stream):
                    self._eager_step(idx)
                torch.cuda.current_stream().wait_stream(self._stream)
            else:
                self._eager_step(idx)
            self.step += 1
            done += 1
        return done

    def _capture(self, idx: torch.Tensor | None) -> None:
        """Capture one training step (forward, backward, AdamW) in a CUDA graph.

        UNTESTED: written for CUDA but never run on a GPU in development. Any failure falls back
        to eager steps with a warning. The three eager steps before capture are real training
        steps (they also warm up cuBLAS and the allocator on a side stream's behalf).
        """
        try:
            self._static_idx = None if idx is None else idx.clone()
            self.optimizer.zero_grad(set_to_none=True)
            stream = self._stream
            stream.wait_stream(torch.cuda.current_stream())
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.stream(stream), torch.cuda.graph(graph):
                if self._static_idx is None:
                    xb, tb = self.x, self.t
                else:
                    xb, tb = (
                        self.x.index_select(0, self._static_idx),
                        self.t.index_select(0, self._static_idx),
                    )
                loss = self._loss(self.model(xb), tb)
                loss.backward()
                if self.perp_grad:
                    project_gradients_(self.model.parameters())
                self.optimizer.step()
            torch.cuda.current_stream().wait_stream(stream)
            self._graph = graph
        except Exception as e:  # pragma: no cover - needs a GPU
            import warnings

            warnings.warn(f"CUDA graph capture failed ({e}); training eagerly", stacklevel=2)
            self._graph_failed = True
            self._graph = None

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss and accuracy on the whole train and test sets (only at checkpoint steps)."""
        result: dict[str, float] = {}
        for name, x, y in (("train", self.x, self.y), ("test", self.x_test, self.y_test)):
            total, correct = 0.0, 0
            for i in range(0, len(y), EVAL_CHUNK):
                out = self.model(x[i : i + EVAL_CHUNK])
                yy = y[i : i + EVAL_CHUNK]
                total += float(self._loss(out, self._targets(yy), reduction="sum"))
                correct += int((out.argmax(1) == yy).sum())
            denom = len(y) * (self.data.n_classes if self.mse else 1)
            result[f"{name}_loss"] = total / max(denom, 1)
            result[f"{name}_acc"] = correct / max(len(y), 1)
        if self.corrupt is not None:  # --corrupt: memorization and unlearning seen separately
            pred = torch.cat(
                [self.model(self.x[i : i + EVAL_CHUNK]).argmax(1) for i in range(0, self.n, EVAL_CHUNK)]
            )
            hit, bad = pred == self.y, self.corrupt
            result["train_acc_clean"] = (
                float(hit[~bad].float().mean()) if bool((~bad).any()) else float("nan")
            )
            result["train_acc_corrupt"] = float(hit[bad].float().mean()) if bool(bad.any()) else float("nan")
            # on the corrupted examples: how often the model answers the true label (generalization)
            result["train_acc_corrupt_true"] = (
                float((pred == self.y_true)[bad].float().mean()) if bool(bad.any()) else float("nan")
            )
        return result

    def measures(self) -> dict[str, float]:
        """The paper's competing measures on the training inputs (grokwatch.train.measures)."""
        return model_measures(self.model, self.x, self.config.seed)

    # -- resume state ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain tensors, ints and strings only, so `torch.load(weights_only=True)` reads it."""
        return {
            "format": STATE_FORMAT,
            "step": int(self.step),
            "config": self.config.to_json(),
            "data_fingerprint": self.data.fingerprint,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "torch_rng": torch.get_rng_state(),
            "data_gen": self.gen.get_state(),
            "perm": self.perm.clone(),
            "pos": int(self.pos),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        cuda = self.device.type == "cuda"
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # device-dependent options follow this run, not the old one
            group["capturable"] = cuda
            group["fused"] = True if self.fused else None
            group["foreach"] = None
            for param in group["params"]:  # capturable AdamW keeps its step counter on the GPU
                st = self.optimizer.state.get(param, {})
                if "step" in st:
                    st["step"] = st["step"].to(param.device if cuda else "cpu", torch.float32)
        torch.set_rng_state(state["torch_rng"])
        self.gen.set_state(state["data_gen"])
        self.perm = state["perm"].clone()
        self._perm_dev = self.perm.to(self.device)
        self.pos = int(state["pos"])
        self.step = int(state["step"])


def _fused_adamw_step(opt: torch.optim.Optimizer) -> bool:
    """One AdamW step as the very kernel call torch.optim makes for fused=True, minus its
    per-call Python bookkeeping (~0.1 ms of a ~1.8 ms MNIST step on one CPU thread).

    Bitwise identical to `opt.step()` (tests compare hundreds of steps, with and without
    weight decay); state lives in `opt.state` as usual, so state_dict and resume see no
    difference. Returns False, having done nothing, whenever the plain path is needed:
    the first step (state not created yet), anything but one plain fused group, or a torch
    without the kernel.
    """
    if len(opt.param_groups) != 1:
        return False
    g = opt.param_groups[0]
    if (
        not g.get("fused")
        or g.get("amsgrad")
        or g.get("maximize")
        or g.get("capturable")
        or g.get("differentiable")
        or not isinstance(g["lr"], float)
    ):
        return False
    params = [p for p in g["params"] if p.grad is not None]
    states = [opt.state.get(p) for p in params]
    if not params or any(not st or "exp_avg" not in st for st in states):
        return False
    kernel = getattr(torch, "_fused_adamw_", None)
    if kernel is None:
        return False
    steps = [st["step"] for st in states]
    torch._foreach_add_(steps, 1)
    kernel(
        params,
        [p.grad for p in params],
        [st["exp_avg"] for st in states],
        [st["exp_avg_sq"] for st in states],
        [],
        steps,
        lr=g["lr"],
        beta1=g["betas"][0],
        beta2=g["betas"][1],
        weight_decay=g["weight_decay"],
        eps=g["eps"],
        amsgrad=False,
        maximize=False,
        grad_scale=None,
        found_inf=None,
    )
    return True


def _fused_adamw_ok(dtype: torch.dtype) -> bool:
    """Whether this torch has the fused CPU AdamW kernel for `dtype` (a one-step probe)."""
    try:
        p = torch.nn.Parameter(torch.zeros(2, dtype=dtype))
        p.grad = torch.ones_like(p)
        torch.optim.AdamW([p], fused=True).step()
        return True
    except (RuntimeError, ValueError, TypeError):
        return False


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


# -- files ----------------------------------------------------------------------------------
def write_checkpoint(out: Path, trainer: Trainer, metrics: dict[str, float]) -> Path:
    """`step_XXXXXXXX.safetensors`: the weights under their module names plus str->str metadata."""
    import json

    from safetensors.torch import save

    cfg = trainer.config
    tensors = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    meta = {
        "step": str(trainer.step),
        **{k: repr(float(metrics[k])) for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
        "seed": str(cfg.seed),
        "task": cfg.task,
        "data": trainer.data.description,
        "data_fingerprint": trainer.data.fingerprint,
        "config": cfg.to_json(),
        "producer": "grokwatch train",
        # every other metric of this checkpoint: --corrupt accuracies, the competing measures
        **{
            k: repr(float(v))
            for k, v in metrics.items()
            if k not in _META_FIXED and isinstance(v, int | float)
        },
        "measures": json.dumps(
            {"act_sparsity_threshold": ACT_THRESHOLD, "circuit_drop": DROP, "circuit_seed": cfg.seed}
        ),
    }
    if trainer.data.corrupt_idx is not None:
        meta["corrupt"] = json.dumps(
            {
                "fraction": cfg.corrupt,
                "count": len(trainer.data.corrupt_idx),
                "seed": cfg.seed,
                "indices": trainer.data.corrupt_idx.tolist(),
            }
        )
    path = out / checkpoint_name(trainer.step)
    blob = save(tensors, metadata=meta)  # bytes, written with the usual umask (save_file uses 0600)
    write_atomic(path, blob)
    return path


_META_FIXED = frozenset({"step", "train_loss", "train_acc", "test_loss", "test_acc", "wall_s"})


def write_state(out: Path, trainer: Trainer) -> None:
    import io

    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    write_atomic(out / STATE_NAME, buf.getvalue())


def read_state(out: Path) -> dict | None:
    path = out / STATE_NAME
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def write_metrics(out: Path, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    write_atomic(out / METRICS_NAME, text)


def read_metrics(out: Path, upto_step: int) -> list[str]:
    """Existing metric lines up to the resumed step (later ones belong to a lost future)."""
    import json

    path = out / METRICS_NAME
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= upto_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    return kept


class Interrupt:
    """Turns the first Ctrl-C into a flag the loop checks between steps (a second one aborts).

    Why not catch KeyboardInterrupt: it can land between backward() and optimizer.step(), leaving
    a half-updated model; with the flag the checkpoint is always taken between whole steps.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def __call__(self) -> bool:
        return self.requested


def time_steps(trainer: Trainer, seconds: float = 0.5, warmup: int = 3) -> float:
    """Seconds per step from a short timing (used by --dry-run and the benchmark).

    The median over several equal chunks, so a hiccup (another process on a shared machine,
    a first-call initialization) does not dominate the estimate.
    """
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    trainer.train_steps(warmup)
    sync()
    size, rates, t_start = 1, [], time.perf_counter()
    while True:
        t0 = time.perf_counter()
        trainer.train_steps(size)
        sync()
        dt = time.perf_counter() - t0
        if dt < seconds / 10 and size < 4096:
            size *= 2
            continue
        rates.append(dt / size)
        if len(rates) >= 5 or time.perf_counter() - t_start > 2 * seconds:
            return sorted(rates)[len(rates) // 2]
