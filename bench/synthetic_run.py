"""A synthetic training run shaped like the paper's MLP, for benchmarks.

    from synthetic_run import write_checkpoints, load_weights
    paths = write_checkpoints(Path("runs/bench"), 200)   # step_00000000.safetensors ...

N checkpoints of a 784-200-200-10 MLP (float32 safetensors, keys fc{1,2,3}.{weight,bias},
metadata {"step": ...}) whose spectra move like a training run: PyTorch-default init x 8, then a
growing heavy-tailed low-rank part (alpha ~8 -> ~2) and, late in fc1, a drifting element mean that
shows up as correlation traps. Deterministic for a seed; numpy and safetensors only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["LAYERS", "SHAPES", "load_weights", "steps_for", "write_checkpoints"]

SHAPES = {"fc1": (200, 784), "fc2": (200, 200), "fc3": (10, 200)}
LAYERS = list(SHAPES)


def steps_for(n: int, last: int = 100_000) -> list[int]:
    """n distinct log-spaced steps 0 .. last (like a run's checkpoint schedule)."""
    steps = {0}
    k = n
    while len(steps) < n:
        steps = {0} | {int(round(x)) for x in np.logspace(0, np.log10(last), k)}
        k += 1
    return sorted(steps)[:n]


def write_checkpoints(out: Path, n: int, seed: int = 0) -> list[Path]:
    """Checkpoints whose spectra evolve like a grokking run's (see module doc)."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = {}
    for name, (o, i) in SHAPES.items():
        b = 1 / np.sqrt(i)  # torch.nn.Linear default init: U(-1/sqrt(in), 1/sqrt(in)), then x 8
        W0 = rng.uniform(-b, b, (o, i)) * 8
        bias = rng.uniform(-b, b, o) * 8
        M = min(o, i)
        U = np.linalg.qr(rng.standard_normal((o, M)))[0]
        V = np.linalg.qr(rng.standard_normal((i, M)))[0]
        base[name] = (W0, bias, U, V)
    steps = steps_for(n)
    paths = []
    for j, step in enumerate(steps):
        t = j / max(1, n - 1)  # training progress 0 .. 1
        tensors = {}
        for name, (W0, bias, U, V) in base.items():
            M = U.shape[1]
            p = 0.5 + 0.25 * t  # singular values ~ k^-p: a heavier tail as training goes on
            S = (U * np.arange(1, M + 1) ** -p) @ V.T
            sd = W0.std()
            S *= np.linalg.norm(W0) / np.linalg.norm(S)
            W = W0 + 3 * t**2 * S + 0.02 * sd * rng.standard_normal(W0.shape)
            if name == "fc1" and t > 0.6:  # a drifting element mean: traps after shuffling
                W += 0.4 * sd * (t - 0.6) / 0.4
            tensors[f"{name}.weight"] = W.astype(np.float32)
            tensors[f"{name}.bias"] = (bias * (1 + t)).astype(np.float32)
        p = out / f"step_{step:08d}.safetensors"
        save_file(tensors, str(p), metadata={"step": str(step)})
        paths.append(p)
    return paths


def load_weights(paths: list[Path]) -> list[dict[str, np.ndarray]]:
    from safetensors.numpy import load_file

    return [{k: v for k, v in load_file(str(p)).items() if k.endswith(".weight")} for p in paths]
