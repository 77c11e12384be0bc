"""--jobs N and --executor ray give a sequential run's metrics, and a failing cell fails
alone (issue 14)."""
from __future__ import annotations

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
