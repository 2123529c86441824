"""`Monitor`: analyse a model's weights every N steps without stalling training.

    monitor = grokwatch.Monitor(model, every=500, stop_on="anti-grokking")
    for step, batch in enumerate(loader, 1):
        ...; opt.step()
        for res in monitor.step(step):          # results that finished since the last call
            print(res.step, res.phase, res.alphas)
        if monitor.should_stop:
            break
    monitor.close()

Why a copy and a thread: at a cadence step the training thread only copies the
selected weight matrices to CPU memory (`detach().cpu().clone()`: the one sync a
GPU run pays) and returns; a single background thread computes the eigenvalues,
the power-law fits and the traps (numpy's LAPACK releases the GIL). When the
analysis is slower than the cadence, the waiting snapshot is replaced by the
newer one (counted in `skipped`), so training never waits and memory stays at
one snapshot. Labels come from `grokwatch.phases.label_records` over every
analysed step so far, as `scan` labels a folder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grokwatch.records import LayerRecord
from grokwatch.settings import PhaseRules, Settings

__all__ = ["Monitor", "MonitorResult"]

LEVELS = ("none", "trap", "anti-grokking")
PHASE_CODE = {"unknown": -1, "pre-grokking": 0, "grokking": 1, "anti-grokking": 2}


@dataclass
class MonitorResult:
    """The analysis of the weights at one step."""

    step: int
    records: list[LayerRecord]
    phase: str
    reason: str
    level: str  # none | trap | anti-grokking (as `report --fail-on`)

    @property
    def alphas(self) -> dict[str, float | None]:
        return {r.layer: r.alpha for r in self.records}

    @property
    def n_traps(self) -> int:
        return sum(r.n_traps or 0 for r in self.records)

    def metrics(self, prefix: str = "grokwatch/") -> dict[str, float]:
        """Scalars for a trainer's loggers: alpha per layer, traps, phase and level codes."""
        out: dict[str, float] = {
            f"{prefix}alpha/{r.layer}": float(r.alpha) for r in self.records if r.alpha is not None
        }
        if any(r.n_traps is not None for r in self.records):
            out[f"{prefix}traps"] = float(self.n_traps)
        out[f"{prefix}phase"] = float(PHASE_CODE.get(self.phase, -1))
        out[f"{prefix}level"] = float(LEVELS.index(self.level))
        return out


def _level_ok(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    if name not in LEVELS[1:]:
        raise ValueError(f"{what}={name!r} is not one of: trap, anti-grokking")
    return name


@dataclass
class _Job:
    step: int
    weights: dict[str, object]  # layer -> CPU torch tensor or numpy array


@dataclass
class Monitor:
    """Analyse `model` every `every` steps in a background thread; see the module docstring.

    settings: what to compute (traps on by default: they feed the phase label and the levels).
    stop_on: "trap" or "anti-grokking": `should_stop` turns True at the first step at that level.
    folder: a run folder whose checkpoints `scan_saved()` analyses into the cache `report` uses.
    background=False analyses on the calling thread (deterministic; for debugging).
    """

    model: object
    every: int = 500
    settings: Settings = field(default_factory=lambda: Settings(traps=True))
    rules: PhaseRules = field(default_factory=PhaseRules)
    stop_on: str | None = None
    folder: str | Path | None = None
    background: bool = True
    on_result: Callable[[MonitorResult], None] | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        self.stop_on = _level_ok(self.stop_on, "stop_on")
        self.results: list[MonitorResult] = []
        self.skipped = 0  # snapshots replaced before analysis (analysis slower than the cadence)
        self.errors: list[str] = []
        self.should_stop = False
        self.stop_reason: MonitorResult | None = None
        self._records: list[LayerRecord] = []
        self._done: list[MonitorResult] = []  # finished, not yet handed out by step()/drain()
        self._lock = threading.Condition()
        self._pending: _Job | None = None
        self._scan_pending = False
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_step: int | None = None
        self._count = 0
        self._names: list[tuple[str, str]] | None = None  # (state_dict key, layer) to analyse

    # ------------------------------------------------------------ training thread

    def step(self, step: int | None = None) -> list[MonitorResult]:
        """Call once per optimizer step; snapshots at the cadence. Returns newly finished results."""
        if step is None:
            self._count += 1
            step = self._count
        if step % self.every == 0 and step != self._last_step:
            self.snapshot(step)
        return self.drain()

    def snapshot(self, step: int) -> None:
        """Copy the weights now (CPU) and queue their analysis."""
        self._last_step = step
        job = _Job(step, self._copy_weights())
        if not self.background:
            self._finish(self._analyse(job))
            return
        with self._lock:
            if self._pending is not None:
                self.skipped += 1
            self._pending = job
            self._start()
            self._lock.notify_all()

    def scan_saved(self, folder: str | Path | None = None) -> None:
        """Analyse the checkpoints saved in `folder` into its cache (in the background)."""
        if folder is not None:
            self.folder = folder
        if self.folder is None:
            return
        if not self.background:
            self._scan_folder()
            return
        with self._lock:
            self._scan_pending = True
            self._start()
            self._lock.notify_all()

    def drain(self) -> list[MonitorResult]:
        with self._lock:
            out, self._done = self._done, []
        return out

    def flush(self, timeout: float | None = None) -> list[MonitorResult]:
        """Wait until every queued analysis is done; returns results not yet handed out."""
        with self._lock:
            self._lock.wait_for(
                lambda: self._pending is None and not self._busy and not self._scan_pending, timeout
            )
        return self.drain()

    def close(self, wait: bool = True) -> list[MonitorResult]:
        out = self.flush() if wait else self.drain()
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(5)
        return out

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def latest(self) -> MonitorResult | None:
        return self.results[-1] if self.results else None

    @property
    def records(self) -> list[LayerRecord]:
        return list(self._records)

    def _copy_weights(self) -> dict[str, object]:
        import torch

        from grokwatch.analyze import select
        from grokwatch.checkpoints import TensorRef, clean_name
        from grokwatch.checkpoints.layers import part_matrix

        state = self.model.state_dict()
        if self._names is None:
            refs = [
                TensorRef(clean_name(k), k, "", tuple(v.shape))
                for k, v in state.items()
                if isinstance(v, torch.Tensor) and v.is_floating_point()
            ]
            self._names = [(r.key, r.layer, r) for r in select(refs, self.settings, self._heads())]
        with torch.no_grad():
            return {
                layer: part_matrix(state[key].detach().cpu(), r).clone()
                for key, layer, r in self._names
                if key in state
            }

    def _heads(self):
        """A Hugging Face model's attention head counts (its `config`), which `--split-qkv` needs for
        per-head and grouped-query fused QKV, as config.json gives them to a scan; None otherwise."""
        if not self.settings.split_qkv:
            return None
        config = getattr(self.model, "config", None)
        if not hasattr(config, "to_dict"):
            return None
        from grokwatch.checkpoints.layers import attention_from_config

        try:
            return attention_from_config(config.to_dict())
        except Exception:  # noqa: BLE001 - an odd config only means the matrix stays whole
            return None

    # ------------------------------------------------------------ worker thread

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="grokwatch-monitor", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not None or self._scan_pending or self._closed)
                if self._pending is None and not self._scan_pending:
                    return  # closed
                job, self._pending = self._pending, None
                scan, self._scan_pending = self._scan_pending, False
                self._busy = True
            try:
                if job is not None:
                    self._finish(self._analyse(job))
                if scan:
                    self._scan_folder()
            except Exception as e:  # noqa: BLE001 - a monitor must never kill training
                self.errors.append(f"analysis failed: {e.__class__.__name__}: {e}")
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _analyse(self, job: _Job) -> MonitorResult:
        import numpy as np

        from grokwatch.analyze import matrix_spectrum, set_fields, spectrum_fields
        from grokwatch.phases import label_records

        name = f"step {job.step}"
        records = []
        for layer, t in job.weights.items():
            W = t.float().numpy() if hasattr(t, "numpy") and str(t.dtype) == "torch.bfloat16" else t
            W = W.numpy() if hasattr(W, "numpy") else np.asarray(W)
            rec = LayerRecord(checkpoint=name, step=job.step, layer=layer, shape=list(W.shape))
            try:
                vals, evals = matrix_spectrum(W, self.settings, layer)
                set_fields(rec, vals)
                if evals is not None:
                    set_fields(rec, spectrum_fields(evals, self.settings))
            except (ValueError, np.linalg.LinAlgError) as e:
                set_fields(rec, {"error": f"analysis failed: {e}"})
            records.append(rec)
        with self._lock:
            self._records.extend(records)
            history = list(self._records)
        label_records(history, self.rules)  # every step so far, as scan labels a folder
        phase = records[0].phase if records else "unknown"
        reason = records[0].phase_reason if records else "no layer to analyse"
        if phase == "anti-grokking":
            level = "anti-grokking"
        elif sum(r.n_traps or 0 for r in records) > 0:
            level = "trap"
        else:
            level = "none"
        return MonitorResult(job.step, records, phase or "unknown", reason or "", level)

    def _finish(self, res: MonitorResult) -> None:
        with self._lock:
            self.results.append(res)
            self._done.append(res)
            if (
                self.stop_on
                and not self.should_stop
                and LEVELS.index(res.level) >= LEVELS.index(self.stop_on)
            ):
                self.should_stop, self.stop_reason = True, res
        if self.on_result is not None:
            self.on_result(res)

    def _scan_folder(self) -> None:
        from grokwatch.errors import NoCheckpointsError
        from grokwatch.scan import scan_folder

        try:
            scan_folder(self.folder, self.settings, workers=1, cache=True, rules=self.rules)
        except NoCheckpointsError:
            pass
