"""--jobs N and --executor ray give a sequential run's metrics, and a failing cell fails
alone (issue 14)."""
from __future__ import annotations

import time

import pytest

from harness.testing import tiny_suite
from harness.runner import run_suite
from harness.suite import load_suite


def _grid():
    return tiny_suite(methods=[{"name": "pop"},
                               {"name": "bpr_mf", "params": {"dim": 16, "epochs": 3,
                                                             "batch_size": 256}},
                               {"name": "lightgcn", "params": {"dim": 16, "epochs": 2,
                                                               "batch_size": 256}}],
                      seeds=[0, 1])


def _metrics(results):
    return [(r.cell.label, r.status, sorted((k, v) for k, v in r.metrics.items()
                                            if "@" in k)) for r in results]


@pytest.fixture
def sequential(workdir, write_suite, registry):
    suite, cells = load_suite(write_suite(_grid()), registry)
    results = run_suite(suite, cells, registry, tracking_uri="sqlite:///seq.db")
    assert {r.status for r in results} == {"finished"}
    return suite, cells, _metrics(results)


def test_jobs_2_gives_the_sequential_metrics(sequential, registry):
    suite, cells, expected = sequential
    results = run_suite(suite, cells, registry, tracking_uri="sqlite:///jobs.db", jobs=2)
    assert _metrics(results) == expected, [r.error for r in results if r.error]  # bit-identical


def test_ray_gives_the_sequential_metrics(sequential, registry):
    pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
    import mlflow

    suite, cells, expected = sequential
    results = run_suite(suite, cells, registry, tracking_uri="sqlite:///ray.db", jobs=2,
                        executor="ray")
    assert _metrics(results) == expected
    # the tasks logged into the driver's store like a local run: tags and artifacts
    client = mlflow.MlflowClient(f"sqlite:///{__import__('os').path.abspath('ray.db')}")
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'cell'")
    assert len(runs) == len(cells)
    assert {r.data.tags["bench.status"] for r in runs} == {"finished"}
    arts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"resolved_config.json", "per_user_metrics.json", "split_diagnostics.json"} <= arts


def test_a_failing_cell_fails_alone_in_a_worker(runtime_plugin, write_suite):
    from test_runner import FLAKY_PLUGIN  # raises on seed 1

    from harness.registry import Registry

    runtime_plugin("flaky_plugin", FLAKY_PLUGIN)  # the workers get the driver's sys.path
    registry = Registry()
    suite, cells = load_suite(write_suite(tiny_suite(methods=[{"name": "flaky"},
                                                              {"name": "pop"}])), registry)
    results = run_suite(suite, cells, registry, jobs=2)
    status = {(r.cell.method.key, r.cell.seed): r.status for r in results}
    assert status == {("flaky", 0): "finished", ("flaky", 1): "failed",
                      ("pop", 0): "finished", ("pop", 1): "finished"}, [r.error for r in results]
    assert "boom on seed 1" in next(r.error for r in results if r.status == "failed")


def test_ray_resource_request_comes_from_the_spec_and_the_suite(workdir, write_suite, registry):
    from harness.runner import _resources

    grid = tiny_suite(methods=[{"name": "pop"},
                               {"name": "bpr_mf", "resources": {"cpus": 2, "memory_gb": 1.5}}],
                      seeds=[0])
    _, cells = load_suite(write_suite(grid), registry)
    assert _resources(cells[0], registry) == {}  # Ray's default: one CPU
    assert _resources(cells[1], registry) == {"cpus": 2.0, "memory_gb": 1.5}


PID_PLUGIN = '''
import os
from pathlib import Path

from harness.api import MethodSpec
from harness.hookspecs import hookimpl


@hookimpl
def bench_register_methods():
    return [MethodSpec("where", ("topk",), "records the process it trained in")]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "where":
        return None
    import time

    import torch
    time.sleep(0.5)  # long enough that both slots take cells
    Path("pids").mkdir(exist_ok=True)
    Path("pids", f"{ctx.seed}").write_text(f"{os.getpid()} {torch.get_num_threads()}")
    pop = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)

    class Model:
        def score(self, users):
            return pop.expand(len(users), -1).clone()
    return Model()
'''


def test_jobs_2_runs_one_cell_in_the_driver_and_one_in_a_single_worker(runtime_plugin,
                                                                        write_suite):
    """--jobs N spawns N - 1 workers and uses the driver as the N-th slot (a spawned worker
    pays ~5 CPU s of start-up), each with cores / N torch threads."""
    import os
    from pathlib import Path

    from harness.registry import Registry

    runtime_plugin("where_plugin", PID_PLUGIN)
    registry = Registry()
    suite, cells = load_suite(write_suite(tiny_suite(methods=[{"name": "where"}],
                                                     seeds=[0, 1, 2, 3, 4, 5])), registry)
    results = run_suite(suite, cells, registry, jobs=2, threads=1)
    assert {r.status for r in results} == {"finished"}, [r.error for r in results]
    ran = [Path("pids", str(s)).read_text().split() for s in range(6)]
    pids = {int(pid) for pid, _ in ran}
    assert len(pids) == 2 and os.getpid() in pids, ran
    assert {threads for _, threads in ran} == {"1"}


def test_bench_run_prestarts_its_workers_and_the_run_adopts_them():
    """`bench run --jobs N` spawns its N - 1 workers before loading anything (their start-up
    overlaps the driver's); the run's executor takes over that pool instead of spawning
    another, and a pool no run adopted is killed."""
    from harness.executors.local import (_PRESTARTED, PoolExecutor, discard_prestarted,
                                         prestart_workers)

    prestart_workers(2, threads=1)
    pool = _PRESTARTED[(1, 1)]
    spawned = list(pool._processes.values())
    assert len(spawned) == 1
    executor = PoolExecutor(2, threads=1, registry=object())
    try:
        assert executor._pool is pool and not _PRESTARTED
    finally:
        executor.shutdown(kill=True)
    prestart_workers(3, threads=1)
    idle = list(_PRESTARTED[(2, 1)]._processes.values())
    assert len(idle) == 2
    discard_prestarted()
    for proc in idle:
        # the pool's own thread may reap the killed worker first; is_alive() then reads
        # the exit status it recorded, a moment later
        deadline = time.monotonic() + 10
        while proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not proc.is_alive()
    assert not _PRESTARTED


def test_run_suite_prestarts_its_workers_and_kills_them_when_the_store_fails(
        workdir, write_suite, registry, monkeypatch):
    """run_suite with --jobs starts its workers before opening the store (their start-up
    overlaps it); when the store cannot be used no grid starts, and no worker is left."""
    from harness.executors import local
    from harness.stores import StoreError

    workers = []
    discard = local.discard_prestarted

    def note_then_discard():
        for pool in local._PRESTARTED.values():
            workers.extend(pool._processes.values())
        discard()

    monkeypatch.setattr(local, "discard_prestarted", note_then_discard)
    suite, cells = load_suite(write_suite(_grid()), registry)
    with pytest.raises(StoreError):
        run_suite(suite, cells, registry, tracking_uri="nosuchscheme://x", jobs=2, threads=1)
    assert len(workers) == 1 and not local._PRESTARTED  # started before the store, dropped
    deadline = time.monotonic() + 10
    while workers[0].is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers[0].is_alive()
