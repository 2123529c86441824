"""Build the corpus of real training runs that the phase labeller is measured on.

Every run is made by `grokwatch train` itself (so a user can rebuild it), in a git-ignored
folder, resumable: rerun the script and each run continues from its last saved state, so the
corpus can be built over several sittings. Runs are queued longest-first onto `--jobs`
processes (one core each; `grokwatch train` uses one thread by default).

    python bench/phase_runs.py                    # all runs into runs/corpus/, 2 at a time
    python bench/phase_runs.py --only mnist-s0    # one run
    python bench/phase_runs.py --list             # the runs and their commands

Wall time on a 2-core machine (two runs at a time): about 75 minutes for the whole corpus
(each 6e5-step MNIST run takes ~20 minutes at ~1.9 ms/step on a shared core).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# name -> grokwatch train options. Why these runs: the three WD 0 seeds collapse
# (anti-grokking) by accuracy within 6e5 steps; the WD 0.01 control and modular addition with
# weight decay grok without collapsing (a labeller must raise no alarm there); the paper's
# notebook recipe (init x4, lr 5e-4, float64) is a second MNIST recipe; modular addition
# without weight decay memorizes.
RUNS: dict[str, list[str]] = {
    "mnist-s0": ["--steps", "6e5", "--checkpoints", "150", "--seed", "0"],
    "mnist-s1": ["--steps", "6e5", "--checkpoints", "150", "--seed", "1"],
    "mnist-wd0.01-s0": ["--steps", "6e5", "--checkpoints", "150", "--seed", "0", "--wd", "0.01"],
    "mnist-s2": ["--steps", "6e5", "--checkpoints", "150", "--seed", "2"],
    "mnist-notebook": [
        "--steps",
        "1e5",
        "--checkpoints",
        "120",
        "--init-scale",
        "4",
        "--lr",
        "5e-4",
        "--dtype",
        "float64",
    ],
    "modadd-wd1": ["--task", "modadd", "--p", "97", "--steps", "5000", "--checkpoints", "80"],
    "modadd-wd0": ["--task", "modadd", "--p", "97", "--wd", "0", "--steps", "5000", "--checkpoints", "80"],
}


def command(runs: dict[str, list[str]], name: str, root: Path) -> list[str]:
    return [sys.executable, "-m", "grokwatch", "train", *runs[name], "--out", str(root / name)]


def run_one(runs: dict[str, list[str]], name: str, root: Path) -> tuple[str, int, float]:
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(root / f"{name}.log", "a") as log:
        rc = subprocess.call(command(runs, name, root), stdout=log, stderr=subprocess.STDOUT)
    return name, rc, time.perf_counter() - t0


def build_corpus(runs: dict[str, list[str]], default_out: Path, doc: str, argv: list[str] | None) -> int:
    """The command line of a corpus script: train `runs` (name -> options) `--jobs` at a time.

    Shared with bench/transformer_runs.py, which only brings its own RUNS."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_out, help="corpus folder (git-ignored)")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once (one core each)")
    ap.add_argument("--only", nargs="*", default=None, help="run names to build (default: all)")
    ap.add_argument("--list", action="store_true", help="print the runs and their commands, train nothing")
    args = ap.parse_args(argv)
    names = args.only or list(runs)
    unknown = [n for n in names if n not in runs]
    if unknown:
        ap.error(f"unknown run(s) {', '.join(unknown)}; known: {', '.join(runs)}")
    if args.list:
        for n in names:
            print(f"{n:18s} {shlex.join(command(runs, n, args.out))}")
        return 0
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        for name, rc, wall in ex.map(lambda n: run_one(runs, n, args.out), names):
            print(f"{name:18s} rc={rc} {wall / 60:6.1f} min  log: {args.out / (name + '.log')}", flush=True)
            failed += rc != 0
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return build_corpus(RUNS, Path("runs/corpus"), __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
