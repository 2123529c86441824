"""A background "training job" for the monitor tests: fills a folder checkpoint by checkpoint."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from grokwatch.checkpoints.atomic import write_atomic


def ckpt_bytes(step: int, seed: int, heavy: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    draw = (lambda s: rng.standard_t(1.5, size=s)) if heavy else (lambda s: rng.normal(size=s))
    tensors = {
        "fc1.weight": draw((100, 200)).astype(np.float32),
        "fc2.weight": draw((100, 100)).astype(np.float32),
    }
    return save(tensors, metadata={"step": str(step)})


def write_slowly(path: Path, blob: bytes, chunks: int = 12, pause: float = 0.1) -> None:
    """A non-atomic writer: the file grows in place over chunks * pause seconds."""
    size = -(-len(blob) // chunks)
    with open(path, "wb") as f:
        for i in range(0, len(blob), size):
            f.write(blob[i : i + size])
            f.flush()
            time.sleep(pause)


class Writer(threading.Thread):
    """Writes steps 1, 2 (atomic), 3 (slowly, in place), deletes step 1 once seen,
    writes a corrupt safetensors (500) and a corrupt torch file (600), then step 4 (anti-grokking)."""

    def __init__(self, folder: Path, seen: dict[int, threading.Event], delay: float = 0.05):
        super().__init__(daemon=True)
        self.folder, self.seen, self.delay = folder, seen, delay
        self.done = threading.Event()  # set when the job "ends" (the watcher then takes a last look)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            f = self.folder
            time.sleep(self.delay)
            f.mkdir(parents=True, exist_ok=True)  # the folder appears after watching started
            write_atomic(f / "step_00000001.safetensors", ckpt_bytes(1, 1))
            write_atomic(f / "step_00000002.safetensors", ckpt_bytes(2, 2))
            write_slowly(f / "step_00000003.safetensors", ckpt_bytes(3, 3))
            self.seen[1].wait(20)
            (f / "step_00000001.safetensors").unlink()  # save_total_limit rotation
            (f / "step_00000500.safetensors").write_bytes(b"\xff" * 64)  # not a safetensors file
            (f / "step_00000600.pt").write_bytes(b"PK\x03\x04 this zip ends here")
            self.seen[3].wait(20)
            write_atomic(f / "step_00000004.safetensors", ckpt_bytes(4, 4, heavy=True))
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e
        finally:
            self.done.set()
