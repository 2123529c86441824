"""Timing harness of the scan benchmark: best-of timers, the eigensolve floor, scans, WeightWatcher, the CLI.

Every timer returns the best of `repeat` runs (the least disturbed by other processes) and, where it
matters, CPU time of all processes (children via getrusage), which stays steady under load.
Module-level imports are stdlib + numpy only: spawn workers re-import the bench's main script, and
this module with it.

Run as a script it is the child of `fresh_process_j1`: `python bench/timing.py FOLDER REPEAT`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from synthetic_run import LAYERS

__all__ = [
    "best_of",
    "best_scan",
    "breakdown",
    "cli_cmd",
    "cprofile_top",
    "floor_seconds",
    "fresh_process_j1",
    "heavy_imports",
    "pool_startup_seconds",
    "quiet_weightwatcher",
    "strip",
    "time_cmd",
    "timed_scan",
    "ww_analyze",
]


# ----------------------------------------------------------------------------- grokwatch and the floor


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def floor_seconds(
    weights: list[dict[str, np.ndarray]], repeat: int, shuffle: bool = False
) -> tuple[float, float]:
    """(wall, CPU) seconds of Gram + eigvalsh (float64, 1 thread) for every layer; with `shuffle`, also of
    one element shuffle of it."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)

    def once():
        for ws in weights:
            for W in ws.values():
                A = W.astype(np.float64)
                if A.shape[0] < A.shape[1]:
                    A = A.T
                np.linalg.eigvalsh(A.T @ A)
                if shuffle:
                    B = rng.permutation(A.ravel()).reshape(A.shape)
                    np.linalg.eigvalsh(B.T @ B)

    wall, cpu = float("inf"), float("inf")
    with threadpool_limits(1):
        for _ in range(repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            once()
            wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def timed_scan(folder: Path, settings, workers: int, repeat: int) -> dict:
    """Best end-to-end and best steady-state seconds of scan_folder, and the last result.

    -j1: no pool, so steady state is the whole in-process scan. -jN: grokwatch keeps its
    pool between calls, so each round shuts it down, times a cold scan (end to end, with worker
    start-up) and then a second scan on the warm pool (steady state: no interpreter start, imports
    or pool start-up), then shuts the pool down so the workers' CPU is reaped and counted.
    """
    import resource

    from grokwatch import pool
    from grokwatch.scan import scan_folder

    best_e2e, best_steady, best_cpu, result = float("inf"), float("inf"), float("inf"), None
    for _ in range(repeat):
        pool.shutdown()
        ticks: list[float] = []

        def progress(n, ticks=ticks):
            return lambda: ticks.append(time.perf_counter())

        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0, t0 = time.process_time(), time.perf_counter()
        result = scan_folder(folder, settings, workers=workers, cache=False, progress=progress)
        best_e2e = min(best_e2e, time.perf_counter() - t0)
        runs = 1
        if workers > 1:
            t1 = time.perf_counter()
            result = scan_folder(folder, settings, workers=workers, cache=False)
            best_steady = min(best_steady, time.perf_counter() - t1)
            runs = 2
            pool.shutdown()
        else:  # in-process, no pool: the whole scan is steady state, timed as -jN's warm scan is
            best_steady = min(best_steady, time.perf_counter() - t0)
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - c0 + (ch1.ru_utime - ch0.ru_utime) + (ch1.ru_stime - ch0.ru_stime)
        best_cpu = min(best_cpu, cpu / runs)
    n = len(result.checkpoints)
    return {
        "e2e_s": best_e2e,
        "steady_s": best_steady if best_steady < float("inf") else best_e2e,
        "cpu_s": best_cpu,
        "result": result,
        "n": n,
    }


def fresh_process_j1(folder: Path, repeat: int) -> dict:
    """Floor and -j1 timed in a new interpreter that has imported only what `grokwatch scan` imports:
    the heap of this process (every checkpoint loaded, WeightWatcher later) is not what a CLI run sees.
    Runs this module as a script (`python bench/timing.py FOLDER REPEAT`)."""
    out = subprocess.run(
        [sys.executable, __file__, str(folder), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _fresh_j1(folder: Path, repeat: int) -> int:
    """The child side of `fresh_process_j1`: interleaved rounds of the floor and a -j1 scan."""
    from synthetic_run import load_weights

    from grokwatch.settings import Settings

    weights = load_weights(sorted(folder.glob("*.safetensors")))
    floor, scan = float("inf"), float("inf")
    for _ in range(repeat):
        floor = min(floor, floor_seconds(weights, 1)[0])
        scan = min(scan, timed_scan(folder, Settings(), 1, 1)["steady_s"])
    print(json.dumps({"floor_s": floor, "j1_s": scan}))
    return 0


def best_scan(old: dict | None, new: dict) -> dict:
    if old is None:
        return new
    return {
        "e2e_s": min(old["e2e_s"], new["e2e_s"]),
        "steady_s": min(old["steady_s"], new["steady_s"]),
        "cpu_s": min(old["cpu_s"], new["cpu_s"]),
        "result": new["result"],
        "n": new["n"],
    }


def strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k.endswith("_s")}


def pool_startup_seconds(folder: Path, paths: list[Path], repeat: int) -> tuple[float, float]:
    """(wall, CPU of all processes) of a -j2 scan of a 2-checkpoint folder: pool start-up plus one
    checkpoint per worker."""
    from grokwatch.scan import scan_folder
    from grokwatch.settings import Settings

    two = folder.parent / (folder.name + "-two")
    two.mkdir(exist_ok=True)
    for p in paths[:2]:
        shutil.copy(p, two / p.name)
    import resource

    wall, cpu = float("inf"), float("inf")
    try:
        for _ in range(repeat):
            ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            c0, t0 = time.process_time(), time.perf_counter()
            from grokwatch import pool

            pool.shutdown()
            saved, pool.POOL_START_S = pool.POOL_START_S, 0.0  # force a pool for 2 checkpoints
            try:
                scan_folder(two, Settings(), workers=2, cache=False)
            finally:
                pool.POOL_START_S = saved
            pool.shutdown()
            wall = min(wall, time.perf_counter() - t0)
            ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = min(
                cpu, time.process_time() - c0 + ch1.ru_utime - ch0.ru_utime + ch1.ru_stime - ch0.ru_stime
            )
        return wall, cpu
    finally:
        shutil.rmtree(two, ignore_errors=True)


# ----------------------------------------------------------------------------- weightwatcher


def quiet_weightwatcher():
    """Import weightwatcher with its logging and warnings silenced; None if it is not installed."""
    import contextlib
    import io
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            import weightwatcher as ww
    except ImportError:
        return None
    for name in ("weightwatcher", "WW", "ww"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger().setLevel(logging.CRITICAL)
    return ww


def ww_analyze(
    ww, weights: list[dict[str, np.ndarray]], randomize: bool = False, threads: int = 1
) -> tuple[float, float, list]:
    """Seconds for WeightWatcher(model).analyze() over the checkpoints (weights loaded into a torch model
    per checkpoint, as a user would), and its per-layer (alpha, rand_num_spikes) per checkpoint."""
    import contextlib
    import io

    import torch
    from threadpoolctl import threadpool_limits

    limit = threadpool_limits(threads) if threads else contextlib.nullcontext()
    torch_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 200),
        torch.nn.ReLU(),
        torch.nn.Linear(200, 200),
        torch.nn.ReLU(),
        torch.nn.Linear(200, 10),
    )
    linears = [model[0], model[2], model[4]]
    out = []
    buf = io.StringIO()
    c0, t0 = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), limit:
        for ws in weights:
            with torch.no_grad():
                for lin, name in zip(linears, LAYERS):
                    lin.weight.copy_(torch.from_numpy(ws[f"{name}.weight"]))
            df = ww.WeightWatcher(model=model).analyze(randomize=randomize)
            df = df.sort_values("layer_id")
            rows = {}
            for name, (_, r) in zip(LAYERS, df.iterrows()):
                rows[name] = (float(r["alpha"]), int(r["rand_num_spikes"]) if randomize else None)
            out.append(rows)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    torch.set_num_threads(torch_threads)
    return seconds, cpu, out


# ----------------------------------------------------------------------------- the CLI as a user runs it


def cli_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "grokwatch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "grokwatch"]


def time_cmd(cmd: list[str], repeat: int) -> tuple[float, int]:
    best, rc = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        best = min(best, time.perf_counter() - t0)
    return best, rc


def heavy_imports(args: list[str]) -> tuple[list[str], list[tuple[float, str]]]:
    """Top-level heavy packages imported by `python -X importtime -m grokwatch ARGS`, and the 5
    slowest top-level imports (cumulative seconds)."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "grokwatch", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    names, top = set(), []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            cum = int(parts[1]) / 1e6
        except ValueError:
            continue
        raw = parts[2]
        name = raw.strip()
        names.add(name.split(".")[0])
        if raw.startswith(" ") and not raw.startswith("  "):  # top level
            top.append((cum, name))
    heavy = sorted(
        n
        for n in names
        if n
        in ("torch", "matplotlib", "pandas", "weightwatcher", "scipy", "powerlaw", "numpy", "rich", "typer")
    )
    return heavy, sorted(top, reverse=True)[:5]


# ----------------------------------------------------------------------------- where -j1 time goes


def breakdown(folder: Path, repeat: int) -> dict[str, float]:
    """Seconds per component of a 1-worker scan (no profiler), summed over all checkpoints.

    Rows starting with "  " are parts of the row above. Each part is timed alone in a tight loop,
    where caches stay warm: in a real scan the parts interleave and cost more (the "rest" row)."""
    from threadpoolctl import threadpool_limits

    from grokwatch.analyze import analyze_checkpoint, select
    from grokwatch.checkpoints import TensorReader, discover, tensor_refs
    from grokwatch.phases import label_records
    from grokwatch.settings import PhaseRules, Settings
    from grokwatch.spectral.esd import esd, spectrum_metrics
    from grokwatch.spectral.powerlaw import fit_tail

    def orient(a):
        A = a.astype(np.float64)
        return A.T if A.shape[0] < A.shape[1] else A

    s = Settings()
    out: dict[str, float] = {}
    with threadpool_limits(1):
        out["discover (headers, metadata)"], (cks, _) = best_of(lambda: discover(folder), repeat)
        out["tensor_refs + select (header again)"], refs = best_of(
            lambda: [select(tensor_refs(c), s) for c in cks], repeat
        )
        rd = TensorReader()
        out["read tensors (header again + I/O)"], arrs = best_of(
            lambda: [rd.read(r) for rs in refs for r in rs], repeat
        )
        out["esd (astype f64 + Gram + eigvalsh)"], evs = best_of(lambda: [esd(a) for a in arrs], repeat)
        out["  astype f64"], A64 = best_of(lambda: [orient(a) for a in arrs], repeat)
        out["  Gram A.T @ A"], G = best_of(lambda: [A.T @ A for A in A64], repeat)
        out["  eigvalsh"], _ = best_of(lambda: [np.linalg.eigvalsh(g) for g in G], repeat)
        out["fit_tail (ww)"], _ = best_of(lambda: [fit_tail(e, "ww") for e in evs], repeat)
        out["spectrum_metrics"], _ = best_of(lambda: [spectrum_metrics(e) for e in evs], repeat)
        total, res = best_of(lambda: [analyze_checkpoint(c, s) for c in cks], repeat)
        parts = sum(v for k, v in out.items() if not k.startswith(("discover", "  ")))
        out["records + rest of analyze_checkpoint"] = total - parts
        out["analyze_checkpoint total"] = total
        recs = [r for cr in res for r in cr.records]
        out["label_records (phases)"], _ = best_of(lambda: label_records(recs, PhaseRules()), repeat)
        out["floor, re-timed here"], _ = best_of(
            lambda: [np.linalg.eigvalsh((lambda A: A.T @ A)(orient(a))) for a in arrs], repeat
        )
    return out


def cprofile_top(folder: Path, n: int = 14) -> str:
    import cProfile
    import io
    import pstats

    from grokwatch.scan import scan_folder
    from grokwatch.settings import Settings

    pr = cProfile.Profile()
    pr.enable()
    scan_folder(folder, Settings(), workers=1, cache=False)
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(n)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if "ncalls" in ln)
    return "\n".join(lines[start - 0 : start + n + 1])


if __name__ == "__main__":
    sys.exit(_fresh_j1(Path(sys.argv[1]), int(sys.argv[2])))
