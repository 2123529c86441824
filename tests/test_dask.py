"""`--scheduler`: scans on a real Dask cluster give exactly the records of a local `-j1` scan.

Two real clusters on localhost, each started once for this module and always closed: a
`LocalCluster` (2 worker processes, 1 thread each) and a `dask scheduler` with two `dask worker`
processes started as subprocesses, as a user would on a cluster. Workers import grokwatch
from the same environment (PYTHONPATH or the installed package), like the nodes of a real cluster
sharing a software install and the checkpoint folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import llama_block, write_run
from safetensors.numpy import save_file
from typer.testing import CliRunner

import grokwatch
from grokwatch.checkpoints.cache import CACHE_NAME, Cache
from grokwatch.cli import app
from grokwatch.settings import Settings

distributed = pytest.importorskip("distributed")

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", **(env or {})})


def dicts(result) -> list[dict]:
    return [r.to_dict() for r in result.records]


def slow_run(folder: Path, n: int = 10) -> Path:
    """n checkpoints of 300x600 + 300x300 layers: ~0.1-0.2 s each with traps, so a worker is
    still busy when the first result comes back (the killed-worker tests rely on it)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for s in range(1, n + 1):
        w = {
            "fc1.weight": rng.normal(size=(300, 600)).astype(np.float32),
            "fc2.weight": rng.standard_t(2.0 + s / 4, size=(300, 300)).astype(np.float32),
        }
        save_file(w, str(folder / f"step_{s:08d}.safetensors"), metadata={"step": str(s)})
    return folder


# ---------------------------------------------------------------- the two clusters


@pytest.fixture(scope="module")
def local_client():
    """A LocalCluster of 2 processes x 1 thread and a client on it; closed after the module."""
    import logging

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group (a `dask worker` is a nanny and its worker), SIGKILL what lingers."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


_POPEN = {"start_new_session": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def _start_scheduler(d: Path) -> tuple[subprocess.Popen, str]:
    """`dask scheduler` on a free localhost port; returns it and its address once it listens."""
    sched_file = d / "scheduler.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", sched_file]
        + ["--port", "0", "--no-dashboard", "--host", "127.0.0.1"],
        cwd=d,
        **_POPEN,
    )
    for _ in range(600):
        try:
            return proc, json.loads(sched_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    _stop([proc])
    raise RuntimeError("dask scheduler did not start in 60 s")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """`dask scheduler` + two `dask worker` processes on localhost: yields the scheduler address."""
    d = tmp_path_factory.mktemp("dask-pair")
    sched_file = d / "scheduler.json"
    cli = [sys.executable, "-m"]
    common = {"cwd": d, **_POPEN}
    procs = [_start_scheduler(d)[0]]
    try:
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [*cli, "distributed.cli.dask_worker", "--scheduler-file", sched_file, "--nthreads", "1"]
                    + ["--no-dashboard", "--host", "127.0.0.1", "--local-directory", d],
                    **common,
                )
            )
        with distributed.Client(scheduler_file=str(sched_file), timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
            address = c.scheduler.address
        yield address
    finally:
        _stop(procs[1:])
        _stop(procs[:1])


@pytest.fixture
def pair_client(pair):
    """A second client on the pair, for the test's own look at the workers."""
    with distributed.Client(pair, timeout=30) as c:
        yield c


def _kill_a_busy_worker(client, killed: list[int]) -> None:
    """SIGKILL the process of one worker that holds a task of the scan (once)."""
    if killed:
        return
    busy = [addr for addr, keys in client.processing().items() if keys]
    assert busy, "no worker was busy: the workload is too small to test a lost worker"
    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def _killing_progress(client, killed: list[int]):
    def progress(total):
        def tick():
            _kill_a_busy_worker(client, killed)

        return tick

    return progress


# ---------------------------------------------------------------- LocalCluster


@pytest.mark.slow
def _assert_nothing_queued(client) -> None:
    """An interrupted scan cancelled its tasks, not left them queued (cancellation is asynchronous)."""
    for _ in range(200):
        if not any(client.processing().values()):
            break
        time.sleep(0.05)
    assert not any(client.processing().values())


def test_local_cluster_records_identical_to_j1(local_client, tmp_path):
    run = write_run(tmp_path / "run", steps=tuple(range(1, 10)))
    settings = Settings(traps=True)
    one = grokwatch.scan_folder(run, settings, workers=1, cache=False)
    ticks = []
    progress = lambda total: lambda: ticks.append(total)  # noqa: E731
    on_dask = grokwatch.scan_folder(run, settings, cache=False, scheduler=local_client, progress=progress)
    assert dicts(on_dask) == dicts(one) and len(one) == 27
    assert [c.rel for c in on_dask.checkpoints] == [c.rel for c in one.checkpoints]
    assert on_dask.errors == one.errors == [] and on_dask.warnings == one.warnings
    assert ticks == [9] * 9  # the progress bar moves once per checkpoint


@pytest.mark.slow
def test_local_cluster_killed_worker_mid_scan(local_client, tmp_path):
    run = slow_run(tmp_path / "run")
    settings = Settings(traps=True, replicas=3)
    killed: list[int] = []
    res = grokwatch.scan_folder(
        run, settings, cache=False, scheduler=local_client, progress=_killing_progress(local_client, killed)
    )
    assert len(killed) == 1
    assert dicts(res) == dicts(grokwatch.scan_folder(run, settings, workers=1, cache=False))
    assert len(res.checkpoints) == 10 and not res.errors
    local_client.wait_for_workers(2, timeout=120)  # the nanny restarts it for the next test
    assert killed[0] not in local_client.run(os.getpid).values()


@pytest.mark.slow
def test_interrupted_scan_resumes_from_the_cache(local_client, tmp_path):
    """Each result is cached as it arrives: after Ctrl-C on the 4th, 3 are kept and a rerun computes
    only the rest, with the records of -j1; nothing is left running on the cluster."""
    run = write_run(tmp_path / "run", steps=tuple(range(1, 11)))

    def progress(total):
        seen = []

        def tick():
            seen.append(1)
            if len(seen) == 4:
                raise KeyboardInterrupt

        return tick

    with pytest.raises(KeyboardInterrupt):
        grokwatch.scan_folder(run, scheduler=local_client, progress=progress)
    cache = Cache(run / CACHE_NAME)
    assert cache.db.execute("SELECT count(*) FROM done").fetchone()[0] == 3
    cache.close()
    _assert_nothing_queued(local_client)
    again = grokwatch.scan_folder(run, scheduler=local_client)
    assert again.computed == 7
    assert dicts(again) == dicts(grokwatch.scan_folder(run, workers=1, cache=False))


def _vanish_after_discovery(monkeypatch, folder: str, *names: str) -> None:
    """Files listed by the client but gone when a worker reads them: a node without the file,
    or a file deleted mid-scan. Discovery still sees them; analysis cannot."""
    import grokwatch.scan

    real = grokwatch.scan.discover

    def discover(root):
        found = real(root)
        if Path(root) == Path(folder):
            for n in names:
                (Path(root) / n).unlink()
        return found

    monkeypatch.setattr(grokwatch.scan, "discover", discover)


@pytest.mark.slow
def test_local_cluster_unreadable_file_is_reported_like_a_local_scan(local_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative root: the error line must name the file as a local scan does
    expected = {}
    for name, kw in (("local", {"workers": 1}), ("dask", {"scheduler": local_client})):
        write_run(Path(name), steps=(1, 2, 3, 4))
        _vanish_after_discovery(monkeypatch, name, "step_00000002.safetensors")
        expected[name] = grokwatch.scan_folder(name, cache=False, **kw)
    local, dask = expected["local"], expected["dask"]
    assert local.errors == ["local/step_00000002.safetensors: cannot open (No such file or directory)"]
    assert dask.errors == [e.replace("local/", "dask/") for e in local.errors]
    assert [r.step for r in dask.records] == [r.step for r in local.records] and len(dask.records) == 9
    # given as an absolute path under the current folder, the file is named as given, absolute
    write_run(tmp_path / "abs", steps=(1, 2))
    _vanish_after_discovery(monkeypatch, str(tmp_path / "abs"), "step_00000002.safetensors")
    absolute = grokwatch.scan_folder(tmp_path / "abs", cache=False, scheduler=local_client)
    assert absolute.errors == [
        f"{tmp_path}/abs/step_00000002.safetensors: cannot open (No such file or directory)"
    ]


@pytest.mark.slow
def test_a_task_that_raises_is_split_and_reported_never_dropped(local_client, tmp_path):
    """A task raising (here: a checkpoint without files) is retried checkpoint by checkpoint: its
    neighbours in the task still give their records, the culprit one error line naming it."""
    from grokwatch.analyze import analyze_checkpoints
    from grokwatch.checkpoints import discover
    from grokwatch.dask_engine import analyze_on_cluster, chunk_sizes

    cks, _ = discover(write_run(tmp_path / "run", steps=tuple(range(1, 20))))
    broken = cks[5].__class__(path=tmp_path / "run" / "gone", rel="gone", format="safetensors", files=[])
    items = cks[:5] + [broken] + cks[5:]
    assert chunk_sizes(len(items), 2)[2] > 1  # the broken one shares its task with a good one
    got = dict(analyze_on_cluster(local_client, items, Settings()))
    assert sorted(got) == list(range(len(items)))
    assert got[5].records == [] and got[5].error == (
        f"{tmp_path / 'run' / 'gone'}: analysis failed on a Dask worker (IndexError: list index out of range)"
    )
    want = analyze_checkpoints(cks, Settings())
    assert [got[i].records for i in range(len(items)) if i != 5] == [w.records for w in want]


# ---------------------------------------------------------------- per-layer tasks


def _task_names(stream) -> Counter:
    """How many tasks of each function the scheduler ran (a task's key is FUNCTION-uuid)."""
    return Counter(d["key"].rsplit("-", 5)[0] for d in stream.data)


def _after_planning(monkeypatch, change) -> None:
    """Run `change()` once the client has listed the layers, before any worker reads them: a file
    that goes bad mid-scan, or a node that sees another file than the client does."""
    import grokwatch.dask_engine as engine

    real = engine.plan_layers

    def plan(cks, settings):
        planned = real(cks, settings)
        change()
        return planned

    monkeypatch.setattr(engine, "plan_layers", plan)


@pytest.mark.slow
def test_one_checkpoint_runs_layer_by_layer_identical_to_j1(local_client, tmp_path):
    """One sharded bf16 checkpoint of 7 layers on 2 workers: one task per layer (as the scheduler's own
    task log shows), a progress tick per layer, and the records of -j1, bitwise and in file order."""
    root = tmp_path / "run"
    llama_block(root / "checkpoint-1")
    settings = Settings(traps=True)
    one = grokwatch.scan_folder(root, settings, workers=1, cache=False)
    ticks = []
    progress = lambda total: lambda: ticks.append(total)  # noqa: E731
    with distributed.get_task_stream(local_client) as stream:
        got = grokwatch.scan_folder(root, settings, cache=False, scheduler=local_client, progress=progress)
    assert got.records == one.records and dicts(got) == dicts(one) and len(one) == 7
    assert _task_names(stream) == {"_analyze_refs": 7}
    assert ticks == [7] * 7 and got.errors == one.errors == []


@pytest.mark.slow
def test_local_cluster_killed_worker_mid_layer_scan(local_client, tmp_path):
    """A worker killed while it holds a layer task: Dask reruns the task elsewhere, nothing is missing."""
    run = slow_run(tmp_path / "run", n=3)
    settings = Settings(traps=True, replicas=3)
    killed: list[int] = []
    with distributed.get_task_stream(local_client) as stream:
        res = grokwatch.scan_folder(
            run,
            settings,
            cache=False,
            scheduler=local_client,
            progress=_killing_progress(local_client, killed),
        )
    assert len(killed) == 1 and set(_task_names(stream)) == {"_analyze_refs"}
    assert dicts(res) == dicts(grokwatch.scan_folder(run, settings, workers=1, cache=False))
    assert len(res.checkpoints) == 3 and not res.errors
    local_client.wait_for_workers(2, timeout=120)  # the nanny restarts it for the next test


@pytest.mark.slow
def test_layer_tasks_unreadable_file_exits_3_like_a_local_scan(local_client, tmp_path, monkeypatch):
    """A file the client listed but a worker cannot read (truncated in between) is the line a local scan
    prints, path as given (the worker read it by its absolute path from another folder), and exit 3."""
    monkeypatch.chdir(tmp_path)
    write_run(Path("run"), steps=(1, 2, 3))
    bad = Path("run/step_00000002.safetensors")
    raw = bad.read_bytes()
    _after_planning(monkeypatch, lambda: bad.write_bytes(raw[:-100]))
    r = invoke("scan", "run", "--scheduler", local_client.scheduler.address, "--no-cache", "-f", "json")
    local = invoke("scan", "run", "-j", 1, "--no-cache", "-f", "json")  # the file is truncated by now
    assert r.exit_code == local.exit_code == 3, r.output
    assert r.stderr == local.stderr and r.stdout == local.stdout
    assert r.stderr.startswith("grokwatch: error: run/step_00000002.safetensors: truncated")
    assert len(r.stderr.splitlines()) == 1 and len(json.loads(r.stdout)) == 6


@pytest.mark.slow
def test_a_layer_task_that_raises_fails_its_checkpoint_only(local_client, tmp_path, monkeypatch):
    """A layer task raising (not an unreadable file: a bug, here a ref without a file) makes its
    checkpoint one error line naming it; the other checkpoints give -j1's records."""
    import dataclasses

    import grokwatch.dask_engine as engine

    run = write_run(tmp_path / "run", steps=(1, 2, 3))
    real = engine._absolute_ref

    def broken(ref, cwd):
        shipped = real(ref, cwd)
        if "step_00000002" in shipped.file and ref.layer == "fc2.weight":
            return dataclasses.replace(shipped, file=None)
        return shipped

    monkeypatch.setattr(engine, "_absolute_ref", broken)
    got = grokwatch.scan_folder(run, cache=False, scheduler=local_client)
    assert got.errors == [
        f"{run / 'step_00000002.safetensors'}: analysis failed on a Dask worker "
        "(AttributeError: 'NoneType' object has no attribute 'endswith')"
    ]
    one = grokwatch.scan_folder(run, workers=1, cache=False)
    assert dicts(got) == [d for d in dicts(one) if d["step"] != 2] and len(got) == 6


@pytest.mark.slow
def test_interrupted_layer_scan_resumes_from_the_cache(local_client, tmp_path, monkeypatch):
    """Each checkpoint is cached as soon as its last layer is in: Ctrl-C right after the first keeps it and
    cancels the rest; the rerun lists and sends only the other two checkpoints' layers."""
    import grokwatch.dask_engine as engine

    run = write_run(tmp_path / "run", steps=(1, 2, 3))
    real_put = Cache.put

    def put_then_interrupt(self, *args):
        real_put(self, *args)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Cache, "put", put_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            grokwatch.scan_folder(run, scheduler=local_client)
    cache = Cache(run / CACHE_NAME)
    assert cache.db.execute("SELECT count(*) FROM done").fetchone()[0] == 1
    cache.close()
    _assert_nothing_queued(local_client)
    planned: list[str] = []
    real_plan = engine.plan_layers
    monkeypatch.setattr(
        engine, "plan_layers", lambda cks, s: planned.extend(c.rel for c in cks) or real_plan(cks, s)
    )
    with distributed.get_task_stream(local_client) as stream:
        again = grokwatch.scan_folder(run, scheduler=local_client)
    assert again.computed == 2 and len(planned) == 2
    assert _task_names(stream) == {"_analyze_refs": 6}  # 3 layers each
    assert dicts(again) == dicts(grokwatch.scan_folder(run, workers=1, cache=False))


def test_layer_groups_chunk_small_layers_within_one_checkpoint():
    """Small layers travel up to CHUNK per task while much is left, singly at the end; a long layer alone;
    a task never holds two checkpoints' layers; every layer once, in the order given."""
    from grokwatch.checkpoints import TensorRef
    from grokwatch.dask_engine import layer_groups
    from grokwatch.pool import CHUNK
    from grokwatch.split import LayerTask

    def task(ck: int, k: int, shape) -> LayerTask:
        return LayerTask(ck, k, TensorRef(f"l{k}", f"l{k}", "f.safetensors", shape))

    tasks = [task(0, 0, (4096, 4096)), *(task(0, k, (100, 100)) for k in range(1, 40))]
    tasks += [task(1, k, (100, 100)) for k in range(30)]
    groups = layer_groups(tasks, slots=2)
    assert [t for g in groups for t in g] == list(range(len(tasks)))
    assert groups[0] == [0] and len(groups[1]) == CHUNK
    assert all(len({tasks[t].checkpoint for t in g}) == 1 for g in groups)
    assert any(g[-1] == 39 for g in groups)  # the first checkpoint's last group ends at its own last layer
    assert len(groups[-1]) == 1 and len(groups) < len(tasks)


# ---------------------------------------------------------------- one cluster, same versions


@pytest.mark.slow
def test_report_of_several_runs_starts_one_local_cluster(tmp_path, monkeypatch):
    """`report A B --scheduler local` starts one LocalCluster for both runs (not one each), reports what
    -j1 reports, and starts none when everything is cached."""
    made: list[int] = []
    real = distributed.LocalCluster

    def counted(*args, **kwargs):
        made.append(kwargs["n_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(distributed, "LocalCluster", counted)
    a = write_run(tmp_path / "a", steps=(1, 2, 3))
    b = write_run(tmp_path / "b", steps=(4, 5), seed=1)
    args = ("report", f"A={a}", f"B={b}", "--no-chart")
    local = invoke(*args, "-j", 1, "--no-cache")
    on_dask = invoke(*args, "--scheduler", "local", "-j", 2)
    assert on_dask.exit_code == local.exit_code == 0, on_dask.output
    assert on_dask.stdout == local.stdout and made == [2]
    again = invoke(*args, "--scheduler", "local", "-j", 2)
    assert again.exit_code == 0 and again.stdout == local.stdout and made == [2]


@pytest.mark.slow
def test_workers_on_another_grokwatch_exit_5_and_another_numpy_warns(local_client, run_dir, monkeypatch):
    """The client asks every worker its versions before any work: another grokwatch is one line and exit 5
    (here this process is the newer one), another numpy one warning line and the scan goes on."""
    import numpy

    address = local_client.scheduler.address
    workers = ", ".join(sorted(local_client.nthreads()))
    with monkeypatch.context() as m:
        m.setattr(grokwatch, "__version__", "9.9.9")
        r = invoke("scan", run_dir, "--scheduler", address, "--no-cache")
    assert r.exit_code == 5 and r.stdout == ""
    assert r.stderr == (
        f"grokwatch: error: Dask workers {workers} run grokwatch {grokwatch.__version__}, "
        "this process grokwatch 9.9.9: install the same grokwatch on every worker\n"
    )
    with monkeypatch.context() as m:
        m.setattr(numpy, "__version__", "0.0.1")
        r = invoke("scan", run_dir, "--scheduler", address, "--no-cache", "-f", "csv")
    assert r.exit_code == 0, r.output
    assert r.stderr == (
        f"grokwatch: warning: Dask workers {workers} run numpy {numpy.__version__}, this process numpy "
        "0.0.1: eigenvalues, and so alpha, may differ from a local scan's in the last bits\n"
    )
    assert r.stdout == invoke("scan", run_dir, "-j", 1, "--no-cache", "-f", "csv").stdout


# ---------------------------------------------------------------- dask scheduler + dask worker


@pytest.mark.slow
def test_pair_cli_scan_identical_to_j1(pair, tmp_path):
    run = write_run(tmp_path / "run", steps=tuple(range(1, 8)))
    local = invoke("scan", run, "-j", 1, "--no-cache", "-f", "json", "--traps")
    on_dask = invoke("scan", run, "--scheduler", pair, "--no-cache", "-f", "json", "--traps")
    assert local.exit_code == on_dask.exit_code == 0, on_dask.output
    assert on_dask.stdout == local.stdout
    env = invoke("traps", run, "--no-cache", "-f", "csv", env={"GROKWATCH_SCHEDULER": pair})
    assert (
        env.exit_code == 0 and env.stdout == invoke("traps", run, "-j", 1, "--no-cache", "-f", "csv").stdout
    )


@pytest.mark.slow
def test_pair_killed_worker_mid_scan(pair, pair_client, tmp_path):
    run = slow_run(tmp_path / "run")
    settings = Settings(traps=True, replicas=3)
    killed: list[int] = []
    res = grokwatch.scan_folder(
        run, settings, scheduler=pair, progress=_killing_progress(pair_client, killed)
    )
    assert len(killed) == 1 and not res.errors and res.computed == 10
    assert dicts(res) == dicts(grokwatch.scan_folder(run, settings, workers=1, cache=False))
    again = grokwatch.scan_folder(run, settings, scheduler=pair)  # everything was cached as it arrived
    assert again.computed == 0 and dicts(again) == dicts(res)
    pair_client.wait_for_workers(2, timeout=120)


@pytest.mark.slow
def test_pair_unreadable_file_exits_3_with_one_line(pair, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(Path("run"), steps=(1, 2, 3))
    (Path("run") / "step_00000009.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    _vanish_after_discovery(monkeypatch, "run", "step_00000002.safetensors")
    r = invoke("report", "run", "--scheduler", pair, "--no-cache", "--no-chart")
    assert r.exit_code == 3, r.output
    errs = [line for line in r.stderr.splitlines() if line]
    assert errs == [
        "grokwatch: error: run/step_00000009.safetensors: truncated safetensors header",
        "grokwatch: error: run/step_00000002.safetensors: cannot open (No such file or directory)",
    ]
    assert re.search(r"^checkpoints +2, steps 1 – 3$", r.stdout, re.M)  # the two good ones


# ---------------------------------------------------------------- no cluster needed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_and_exit_5(run_dir, monkeypatch):
    import grokwatch.dask_engine

    monkeypatch.setattr(grokwatch.dask_engine, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    r = invoke("scan", run_dir, "--scheduler", address, "--no-cache")
    assert r.exit_code == 5
    assert r.stderr == f"grokwatch: error: cannot reach the Dask scheduler at {address} within 1 s\n"
    assert r.stdout == ""
    r = invoke("scan", run_dir, "--scheduler", "head-node", "--no-cache")
    assert r.exit_code == 2 and "--scheduler head-node: not a scheduler address" in r.stderr


@pytest.mark.slow
def test_scheduler_without_workers_is_exit_5_not_a_hang(run_dir, tmp_path, monkeypatch):
    import grokwatch.dask_engine

    monkeypatch.setattr(grokwatch.dask_engine, "WORKERS_TIMEOUT_S", 0.5)
    proc, address = _start_scheduler(tmp_path)
    try:
        r = invoke("scan", run_dir, "--scheduler", address, "--no-cache")
    finally:
        _stop([proc])
    assert r.exit_code == 5
    assert r.stderr == (
        f"grokwatch: error: the Dask scheduler at {address} has no workers (waited 0.5 s); "
        f"start some: dask worker {address} --nthreads 1\n"
    )


def test_without_dask_scheduler_says_what_to_install(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    r = invoke("report", run_dir, "--scheduler", "local", "--no-cache")
    assert r.exit_code == 5
    assert r.stderr == "grokwatch: error: --scheduler needs Dask: pip install 'grokwatch[dask]'\n"


def test_all_cached_needs_no_cluster(run_dir):
    first = grokwatch.scan_folder(run_dir, workers=1)
    again = grokwatch.scan_folder(run_dir, scheduler="tcp://127.0.0.1:1")  # never contacted
    assert again.computed == 0 and dicts(again) == dicts(first)


def test_cli_and_local_scans_do_not_import_dask(run_dir):
    code = (
        "import sys; from grokwatch.cli import app; import grokwatch; "
        f"grokwatch.scan_folder({str(run_dir)!r}, workers=1, cache=False); "
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_chunks_like_the_local_pool():
    from grokwatch.dask_engine import chunk_sizes
    from grokwatch.pool import CHUNK

    for n in (1, 7, 40, 1000):
        for slots in (1, 2, 16):
            sizes = chunk_sizes(n, slots)
            assert sum(sizes) == n and all(1 <= c <= CHUNK for c in sizes)
            assert sizes[-1] == 1  # single checkpoints at the end
    assert chunk_sizes(1000, 2)[0] == CHUNK


def test_a_task_caps_blas_at_one_thread():
    """What a worker runs first in every task, in a process whose BLAS was not capped by its start-up
    environment (a `dask worker` without the nanny's defaults): one thread afterwards, as in the pool."""
    code = (
        "import numpy, json; from threadpoolctl import threadpool_info\n"
        "before = [i['num_threads'] for i in threadpool_info()]\n"
        "from grokwatch.dask_engine import _one_blas_thread; _one_blas_thread()\n"
        "print(json.dumps([before, [i['num_threads'] for i in threadpool_info()]]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    before, after = json.loads(out.stdout)
    if len(os.sched_getaffinity(0)) > 1:
        assert max(before) > 1  # else this test could not fail
    assert after and set(after) == {1}
