"""grokwatch on LLM-sized checkpoints: Llama-style blocks, bf16, sharded with an index.

    python bench/scale.py                          # d = 1024 and 2048, one block each
    python bench/scale.py --sizes 1024 --check     # exit 1 when a target is missed
    python bench/scale.py --sizes 2048 --rows floor,floor2,j1,j2 --repeat 3 --check   # the -j targets
    python bench/scale.py --memory --blocks 2      # 7B shapes (d = 4096, vocab 32000): peak RSS
    python bench/scale.py --device cuda            # adds the GPU row (batched float64 eigvalsh)

Each row runs in a fresh process under `/usr/bin/time -v`, so its peak RSS is its own
(the largest of the row's processes: `-j2` spawns one worker). A row prints its work
time (imports excluded) and the bench prints ratios against the floor measured in the
same invocation. Synthesized checkpoints go under --out (a temporary folder by
default) and are deleted at the end unless --keep.

Module-level imports are stdlib + numpy only: spawn workers re-import this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MLP_RATIO = 11008 / 4096  # Llama-2-7B: intermediate 11008 at d = 4096 (×2.6875)
VOCAB = 32000
SHARD_BYTES = 512 * 2**20  # the hub's max_shard_size is 5 GB; smaller shards exercise the index here


# ----------------------------------------------------------------------------- synthesis


def block_shapes(d: int, i: int) -> dict[str, tuple[int, ...]]:
    """The tensors of one Llama decoder block: 4 d×d attention, gate/up f×d, down d×f, two norms."""
    f = int(round(MLP_RATIO * d))
    p = f"model.layers.{i}."
    return {
        **{f"{p}self_attn.{x}_proj.weight": (d, d) for x in "qkvo"},
        f"{p}mlp.gate_proj.weight": (f, d),
        f"{p}mlp.up_proj.weight": (f, d),
        f"{p}mlp.down_proj.weight": (d, f),
        f"{p}input_layernorm.weight": (d,),
        f"{p}post_attention_layernorm.weight": (d,),
    }


def model_shapes(d: int, blocks: int, embeddings: bool) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    if embeddings:
        shapes["model.embed_tokens.weight"] = (VOCAB, d)
    for i in range(blocks):
        shapes.update(block_shapes(d, i))
    if embeddings:
        shapes["model.norm.weight"] = (d,)
        shapes["lm_head.weight"] = (VOCAB, d)
    return shapes


def _bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits, round to nearest even (what torch's .to(bfloat16) does)."""
    u = a.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _tensor(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian bulk plus a low-rank heavy part: a trained-looking spectrum, cheap to draw."""
    if len(shape) == 1:
        return np.ones(shape, np.float32)
    a = rng.standard_normal(shape, dtype=np.float32)
    a *= 0.02
    r = 16
    u = rng.standard_normal((shape[0], r), dtype=np.float32)
    v = rng.standard_normal((r, shape[1]), dtype=np.float32)
    s = (0.2 / np.arange(1, r + 1) ** 1.5).astype(np.float32)
    a += (u * s) @ v / np.float32(np.sqrt(shape[1]))
    return a


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    """bf16 safetensors written by hand (header + bytes), so synthesis needs numpy alone."""
    header: dict = {"__metadata__": meta}
    off = 0
    for k, a in tensors.items():
        header[k] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(len(head).to_bytes(8, "little"))
        fh.write(head)
        for a in tensors.values():
            fh.write(a.tobytes())


def synthesize(folder: Path, shapes: dict[str, tuple[int, ...]], seed: int = 0) -> Path:
    """A sharded bf16 checkpoint with `model.safetensors.index.json`, written shard by shard."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    groups: list[list[str]] = [[]]
    size = 0
    for k, s in shapes.items():
        nb = 2 * int(np.prod(s))
        if groups[-1] and size + nb > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(k)
        size += nb
    weight_map = {}
    for i, keys in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        write_safetensors(folder / name, {k: _bf16(_tensor(rng, shapes[k])) for k in keys}, {"format": "pt"})
        weight_map.update({k: name for k in keys})
    total = sum(2 * int(np.prod(s)) for s in shapes.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return folder


# ----------------------------------------------------------------------------- rows (each in a child)


def _load(folder: Path):
    """Yield (key, float32 array) of every 2-D tensor, one at a time."""
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    for shard in dict.fromkeys(index["weight_map"].values()):
        raw = (folder / shard).read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        for k, v in header.items():
            if k == "__metadata__" or len(v["shape"]) != 2:
                continue
            a, b = v["data_offsets"]
            u = np.frombuffer(raw, np.uint16, (b - a) // 2, 8 + n + a)
            yield k, (u.astype(np.uint32) << 16).view(np.float32).reshape(v["shape"])


def row_floor(folder: Path) -> dict:
    """Gram + eigvalsh in float64, one BLAS thread, each layer already in memory (read not timed)."""
    total, cpu = _floor_part(str(folder), None)
    return {"work_s": total, "compute_cpu_s": cpu}


def _floor_part(folder: str, keys: list[str] | None) -> tuple[float, float]:
    """(wall, CPU) seconds of the floor on the layers `keys` (None: all): `row_floor` and the
    workers of `row_floor2`."""
    from threadpoolctl import threadpool_limits

    wall = cpu = 0.0
    with threadpool_limits(1):
        for k, W in _load(Path(folder)):
            if keys is not None and k not in keys:
                continue
            c0, t0 = time.process_time(), time.perf_counter()
            A = W.astype(np.float64)
            if A.shape[0] < A.shape[1]:
                A = A.T
            np.linalg.eigvalsh(A.T @ A)
            wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
            del A
    return wall, cpu


def row_floor2(folder: Path) -> dict:
    """The floor split over 2 processes at once (layers dealt largest first to the less loaded one):
    what 2 cores can do on these layers at best, memory bandwidth shared as in -j2."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    shapes = {k: W.shape for k, W in _load(folder)}
    cost = {k: max(s) * min(s) ** 2 + 4 / 3 * min(s) ** 3 for k, s in shapes.items()}
    parts: list[list[str]] = [[], []]
    load = [0.0, 0.0]
    for k in sorted(cost, key=cost.get, reverse=True):
        i = load.index(min(load))
        parts[i].append(k)
        load[i] += cost[k]
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        list(ex.map(_floor_part, [str(folder)] * 2, [[], []]))  # start both first: not timed
        got = list(ex.map(_floor_part, [str(folder)] * 2, parts))
    return {"work_s": max(w for w, _ in got), "cpu_parts_s": [c for _, c in got]}


def row_scan(folder: Path, workers: int, device: str = "cpu") -> dict:
    """`scan_folder` end to end (discovery, pool start-up, reads, fits), imports excluded."""
    import resource

    from grokwatch import pool
    from grokwatch.scan import scan_folder

    kw = {"device": device} if device != "cpu" else {}
    c0 = time.process_time()
    t0 = time.perf_counter()
    res = scan_folder(folder, workers=workers, cache=False, **kw)
    work = time.perf_counter() - t0
    parent = time.process_time() - c0
    pool.shutdown()  # joins the workers, so their CPU time is in RUSAGE_CHILDREN
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "work_s": work,
        "cpu_parent_s": parent,
        "cpu_workers_s": ch.ru_utime + ch.ru_stime,
        "alpha": {r.layer: r.alpha for r in res.records},
        "errors": res.errors,
    }


def row_dask(folder: Path) -> dict:
    """A Dask LocalCluster with 2 one-thread worker processes (`scan_folder(scheduler=client)`).

    The cluster starts outside the timed region, like the warm local pool. The scale folder is
    one checkpoint, so tasks are its layers (as in the local pool's split, `split.should_split`
    for the cluster's 2 threads) and both workers share it, as the j2 row's processes do.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return {"skipped": "dask is not installed (pip install 'grokwatch[dask]')"}
    from grokwatch.scan import scan_folder

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        t0 = time.perf_counter()
        res = scan_folder(folder, cache=False, scheduler=client)
        work = time.perf_counter() - t0
    return {"work_s": work, "alpha": {r.layer: r.alpha for r in res.records}}


def row_weightwatcher(folder: Path) -> dict:
    """WeightWatcher 0.7.7 `analyze()` on a torch model holding the same 2-D layers (1 thread)."""
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
        return {"skipped": "weightwatcher is not installed (pip install -e .[bench])"}
    logging.getLogger().setLevel(logging.CRITICAL)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    layers, names = [], []
    for k, W in _load(folder):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
        layers.append(lin)
        names.append(k)
    model = torch.nn.Sequential(*layers)
    with threadpool_limits(1), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        t0 = time.perf_counter()
        df = ww.WeightWatcher(model=model).analyze()
        work = time.perf_counter() - t0
    df = df.sort_values("layer_id")
    alpha = {n: float(a) for n, a in zip(names, df["alpha"])}
    return {"work_s": work, "alpha": alpha}


def run_row(name: str, folder: Path, device: str) -> dict:
    if name == "floor":
        return row_floor(folder)
    if name == "floor2":
        return row_floor2(folder)
    if name.startswith("j"):
        return row_scan(folder, int(name[1:]))
    if name == "gpu":
        return row_scan(folder, 1, device)
    if name == "dask":
        return row_dask(folder)
    if name == "ww":
        return row_weightwatcher(folder)
    raise ValueError(name)


# ----------------------------------------------------------------------------- parent


def _env() -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _timed(cmd: list[str]) -> tuple[float, float, float, str]:
    """(wall seconds, peak RSS in GB (10^9 bytes), CPU seconds of all its processes, stdout) under time -v."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", p.stderr))
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-25:])
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{tail}")
    return wall, (int(m.group(1)) * 1024 / 1e9 if m else float("nan")), cpu, p.stdout


def child_row(name: str, folder: Path, device: str) -> dict:
    wall, rss, cpu, out = _timed(
        [sys.executable, __file__, "--row", name, "--folder", str(folder), "--device", device]
    )
    d = json.loads(out.strip().splitlines()[-1])
    d.update(wall_s=wall, rss_gb=rss, cpu_s=cpu)
    return d


def cli_row(folder: Path, workers: int, device: str = "cpu") -> dict:
    exe = Path(sys.executable).parent / "grokwatch"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "grokwatch"]
    cmd = [*cli, "scan", str(folder), "-j", str(workers), "--no-cache", "--format", "csv"]
    if device != "cpu":
        cmd += ["--device", device]
    wall, rss, cpu, _ = _timed(cmd)
    return {"wall_s": wall, "rss_gb": rss, "cpu_s": cpu}


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def bench_size(d: int, blocks: int, embeddings: bool, a: argparse.Namespace, out: Path) -> dict:
    shapes = model_shapes(d, blocks, embeddings)
    folder = out / f"llama_d{d}_b{blocks}{'_emb' if embeddings else ''}"
    t0 = time.perf_counter()
    synthesize(folder, shapes)
    gb = sum(f.stat().st_size for f in folder.iterdir()) / 2**30
    n2d = sum(len(s) == 2 for s in shapes.values())
    print(
        f"\nd = {d}: {blocks} block(s){' + embed/lm_head (vocab 32000)' if embeddings else ''}, "
        f"{n2d} matrices, {gb:.2f} GB bf16 in {len(list(folder.glob('*.safetensors')))} shard(s) "
        f"(written in {time.perf_counter() - t0:.0f} s); load {_load_avg()}",
        flush=True,
    )
    rows: dict[str, dict] = {}
    names = [r for r in a.rows.split(",") if r]
    if a.device != "cpu":
        names.append("gpu")
    for rnd in range(a.repeat):  # rounds interleave the rows, so a burst of load hits them alike
        if a.repeat > 1:
            print(f" round {rnd + 1} of {a.repeat}; load {_load_avg()}", flush=True)
        for name in names:
            r = (
                cli_row(folder, int(name[4:]))
                if name.startswith("cli")
                else child_row(name, folder, a.device)
            )
            if "skipped" in r:
                rows[name] = r
                print(f"  {name:<8} skipped: {r['skipped']}", flush=True)
                continue
            work = r.get("work_s")
            print(
                f"  {name:<8} work {work if work is not None else float('nan'):8.2f} s   "
                f"process {r['wall_s']:8.2f} s   CPU {r['cpu_s']:8.2f} s   peak RSS {r['rss_gb']:.2f} GB",
                flush=True,
            )
            rows[name] = _best_run(rows.get(name), r)
    if a.repeat > 1:
        print(f" best of {a.repeat} rounds per row (the least disturbed run; peak RSS: the largest seen)")
    report(rows)
    if not a.keep:
        shutil.rmtree(folder)
    return {"d": d, "blocks": blocks, "embeddings": embeddings, "gb": gb, "rows": rows, "load": _load_avg()}


def _best_run(old: dict | None, new: dict) -> dict:
    """The faster of two runs of a row (work time, else process wall time), with the larger peak RSS:
    on a shared machine the fastest run is the least disturbed one, while memory does not depend on load."""
    if old is None or "skipped" in old:
        return new
    key = "work_s" if new.get("work_s") is not None else "wall_s"
    best = dict(new if new[key] < old[key] else old)
    best["rss_gb"] = max(old["rss_gb"], new["rss_gb"])
    return best


def report(rows: dict[str, dict]) -> None:
    floor = rows.get("floor", {}).get("work_s")

    def w(n):
        r = rows.get(n, {})
        return r.get("work_s") if "skipped" not in r else None

    lines = []
    if floor:
        for n in ("j1", "j2", "dask", "ww", "gpu"):
            if w(n):
                lines.append(f"{n} {w(n) / floor:.2f}× floor")
    if floor and w("floor2"):
        two, one = sum(rows["floor2"]["cpu_parts_s"]), rows["floor"]["compute_cpu_s"]
        lines.append(
            f"floor on 2 processes at once: {floor / w('floor2'):.2f}× faster than the floor (wall); "
            f"CPU {two:.2f} s vs {one:.2f} s alone: two eigensolves at once cost {100 * (two / one - 1):+.0f} %"
        )
    if w("j1") and w("j2"):
        lines.append(f"-j2 {w('j1') / w('j2'):.2f}× faster than -j1 (wall clock)")
        r = rows["j2"]
        p, c = r["cpu_parent_s"], r["cpu_workers_s"]
        if p and c:
            # On idle cores -j2 takes max(parent, worker) CPU seconds of wall time: this bound holds at
            # any load (CPU seconds barely move with it), the wall-clock ratio only on a quiet machine.
            lines.append(
                f"-j2 split: parent {p:.2f} s + worker {c:.2f} s CPU; on 2 idle cores "
                f"{rows['j1']['cpu_parent_s'] / max(p, c):.2f}× faster than -j1 (j1 CPU / busiest process)"
            )
    if rows.get("cli-j1") and rows.get("cli-j2"):
        lines.append(
            f"CLI -j2 {rows['cli-j1']['wall_s'] / rows['cli-j2']['wall_s']:.2f}× faster than CLI -j1"
        )
    ref = rows.get("j1", {}).get("alpha")
    for n in ("j2", "dask", "ww", "gpu"):
        other = rows.get(n, {}).get("alpha")
        if ref and other:
            common = [k for k in ref if k in other and ref[k] is not None and other[k] is not None]
            if common:
                dmax = max(abs(ref[k] - other[k]) for k in common)
                lines.append(f"max |Δα| j1 vs {n}: {dmax:.1e} over {len(common)} layers")
    for line in lines:
        print("  " + line)


def targets(results: list[dict]) -> list[tuple[str, bool]]:
    out = []
    for res in results:
        rows, d = res["rows"], res["d"]
        f, j1, j2 = (rows.get(n, {}).get("work_s") for n in ("floor", "j1", "j2"))
        if d == 2048 and not res["embeddings"] and f and j1 and j2:
            out.append((f"d=2048: -j2 >= 1.8x -j1 ({j1 / j2:.2f}x)", j1 / j2 >= 1.8))
            out.append((f"d=2048: -j1 <= 1.1x floor ({j1 / f:.2f}x)", j1 / f <= 1.1))
        for n, r in rows.items():
            if res["embeddings"] and n.startswith(("j", "cli")) and "rss_gb" in r:
                out.append((f"d={d} {n}: peak RSS < 1.5 GB ({r['rss_gb']:.2f} GB)", r["rss_gb"] < 1.5))
        if rows.get("j1", {}).get("alpha") and rows.get("j2", {}).get("alpha"):
            out.append((f"d={d}: -j2 alpha identical to -j1", rows["j1"]["alpha"] == rows["j2"]["alpha"]))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1024,2048", help="model widths d, comma-separated")
    p.add_argument("--blocks", type=int, default=1, help="decoder blocks per checkpoint")
    p.add_argument("--embeddings", action="store_true", help="add embed_tokens and lm_head (vocab 32000)")
    p.add_argument(
        "--memory",
        action="store_true",
        help="the 7B memory test: d = 4096 with embeddings, rows cli-1,cli-2 (use --blocks 32 for all of 7B)",
    )
    p.add_argument(
        "--rows", default="floor,floor2,j1,j2,dask,ww,cli-1,cli-2", help="rows to run, in this order"
    )
    p.add_argument("--repeat", type=int, default=1, help="rounds of every row; each row reports its fastest")
    p.add_argument("--device", default="cpu", help="cuda: add a row with scan --device cuda")
    p.add_argument("--out", type=Path, help="where to write checkpoints (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the synthesized checkpoints")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.row:  # a child: one row, its figures as the last line of stdout
        print(json.dumps(run_row(a.row, a.folder, a.device)))
        return 0
    if a.memory:
        a.sizes, a.embeddings = "4096", True
        if a.rows == parse_args([]).rows:
            a.rows = "cli-1,cli-2"
    if a.device != "cpu":
        from grokwatch.device import resolve_device
        from grokwatch.errors import DeviceError

        try:
            resolve_device(a.device)
        except DeviceError as e:
            print(f"scale.py: no GPU row on this machine: {e}", file=sys.stderr)
            return 2
    out = a.out or Path(tempfile.mkdtemp(prefix="grokwatch-scale-"))
    print(f"grokwatch scale bench: {os.cpu_count()} CPUs, load {_load_avg()}; checkpoints in {out}")
    results = []
    try:
        for d in (int(x) for x in a.sizes.split(",")):
            results.append(bench_size(d, a.blocks, a.embeddings, a, out))
    finally:
        if not a.keep and a.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print(f"\nload at end {_load_avg()}")
    checks = targets(results)
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {text}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1, default=str))
    return 1 if a.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
