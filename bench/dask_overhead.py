"""What the Dask engine costs over the local pool on one machine: a -j2 scan against a LocalCluster scan.

    pip install -e ".[dask]"
    python bench/dask_overhead.py [--n 100] [--repeats 3] [--traps]

Both scan the same synthetic run (bench/synthetic_run.py: the paper's MLP shapes) with the cache
off: the local pool with 2 processes (kept warm between repeats, as a notebook keeps it) and a
`LocalCluster` of 2 worker processes x 1 thread through `scan_folder(..., scheduler=client)`
(also kept between repeats). Prints the best of `--repeats` of each, their ratio, what a cold
`scheduler="local"` costs (cluster start-up included) and the load average; checks that both
give the same records. On a cluster the engine's point is more machines, not this ratio: it is the
per-task overhead (scheduler round trips, pickled records) one pays for them.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from synthetic_run import write_checkpoints

import grokwatch
from grokwatch import pool


def best(fn, repeat: int):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    return t_best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="checkpoints in the synthetic run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--traps", action="store_true", help="also count traps (more work per checkpoint)")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    settings = grokwatch.Settings(traps=args.traps)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_checkpoints(run, args.n)

        def scan(**kw):
            return grokwatch.scan_folder(run, settings, cache=False, **kw)

        t_j1, one = best(lambda: scan(workers=1), 1)
        t_pool, local = best(lambda: scan(workers=2), args.repeats)
        pool.shutdown()

        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
        t_start = time.perf_counter() - t0
        try:
            t_dask, on_dask = best(lambda: scan(scheduler=client), args.repeats)
        finally:
            client.close()
            cluster.close()
        t_cold, cold = best(lambda: scan(scheduler="local", workers=2), 1)

    same = [r.to_dict() for r in one] == [r.to_dict() for r in local] == [r.to_dict() for r in on_dask]
    same = same and [r.to_dict() for r in cold] == [r.to_dict() for r in one]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    what = f"{args.n} checkpoints of the paper's MLP{' with traps' if args.traps else ''}"
    print(f"grokwatch scan, {what}; best of {args.repeats}; load average {load}")
    print(f"  -j1, in process                          {t_j1:7.2f} s")
    print(f"  -j2, local pool (warm)                   {t_pool:7.2f} s")
    print(f"  LocalCluster 2 x 1 thread (warm)         {t_dask:7.2f} s   {t_dask / t_pool:.2f}x the -j2 pool")
    print(f"  LocalCluster start-up                    {t_start:7.2f} s")
    print(f"  --scheduler local (cold, start included) {t_cold:7.2f} s")
    print(f"  records identical to -j1: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
