"""The runner end to end on tiny data: resume, failure isolation, determinism, MLflow."""
from __future__ import annotations


import mlflow
import pytest
from typer.testing import CliRunner

from harness.testing import tiny_suite
from harness.cli import app
from harness.runner import run_suite
from harness.suite import load_suite

cli = CliRunner()


def _cell_runs(uri: str, suite: str):
    from harness.tracking import absolute_uri

    uri = absolute_uri(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(suite)
    return client.search_runs([exp.experiment_id], filter_string="tags.`bench.kind` = 'cell'")


def test_run_twice_skips_finished_cells_and_force_reruns(workdir, write_suite):
    path = write_suite(tiny_suite())
    first = cli.invoke(app, ["run", str(path), "-q"])
    assert first.exit_code == 0, first.output
    uri = "sqlite:///mlflow.db"
    runs = _cell_runs(uri, "tiny")
    assert len(runs) == 4
    assert {r.data.tags["bench.status"] for r in runs} == {"finished"}
    assert all("ndcg_at_10" in r.data.metrics for r in runs)

    second = cli.invoke(app, ["run", str(path), "-q"])
    assert second.exit_code == 0
    assert "0 cell(s) ran, 4 skipped" in second.output
    assert len(_cell_runs(uri, "tiny")) == 4  # no duplicate runs
    # the skipped cells report the same numbers as the first run
    table_rows = lambda out: [line for line in out.splitlines() if "bpr_mf" in line]  # noqa: E731
    assert table_rows(first.stdout) == table_rows(second.stdout)

    third = cli.invoke(app, ["run", str(path), "-q", "--force"])
    assert third.exit_code == 0 and "4 cell(s) ran" in third.output
    assert len(_cell_runs(uri, "tiny")) == 8


def test_changed_params_change_the_cell_hash(workdir, write_suite):
    assert cli.invoke(app, ["run", str(write_suite(tiny_suite(seeds=[0]))), "-q"]).exit_code == 0
    changed = tiny_suite(seeds=[0])
    changed["methods"][1]["params"]["dim"] = 8
    out = cli.invoke(app, ["run", str(write_suite(changed)), "-q"])
    assert "1 cell(s) ran, 1 skipped" in out.output  # pop unchanged, bpr_mf rerun


def test_same_seed_same_numbers(workdir, write_suite, registry):
    suite, cells = load_suite(write_suite(tiny_suite(seeds=[3])), registry)
    a = run_suite(suite, cells, registry, tracking_uri="sqlite:///a.db")
    b = run_suite(suite, cells, registry, tracking_uri="sqlite:///b.db")
    metric = lambda rs: [(r.cell.method.key, r.metrics["ndcg@10"], r.metrics["recall@10"]) for r in rs]  # noqa: E731
    assert metric(a) == metric(b)


FLAKY_PLUGIN = '''
from harness.api import MethodSpec
from harness.hookspecs import hookimpl

CALLS = []

@hookimpl
def bench_register_methods():
    return [MethodSpec("flaky", ("topk",), "raises on seed 1")]

@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "flaky":
        return None
    CALLS.append(ctx.seed)
    if ctx.seed == 1:
        raise RuntimeError("boom on seed 1")
    import torch
    pop = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)

    class Model:
        def score(self, users):
            return pop.expand(len(users), -1).clone()
    return Model()
'''


@pytest.fixture
def flaky_plugin(runtime_plugin):
    runtime_plugin("flaky_plugin", FLAKY_PLUGIN)


def test_failing_cell_is_recorded_and_the_grid_goes_on(flaky_plugin, write_suite):
    suite = tiny_suite(methods=[{"name": "flaky"}, {"name": "pop"}])
    result = cli.invoke(app, ["run", str(write_suite(suite)), "-q"])
    assert result.exit_code == 1
    assert "boom on seed 1" in result.output
    runs = _cell_runs("sqlite:///mlflow.db", "tiny")
    status = {(r.data.tags["bench.method"], r.data.tags["bench.seed"]): r.data.tags["bench.status"]
              for r in runs}
    assert status == {("flaky", "0"): "finished", ("flaky", "1"): "failed",
                      ("pop", "0"): "finished", ("pop", "1"): "finished"}
    failed = next(r for r in runs if r.data.tags["bench.status"] == "failed")
    tb = mlflow.artifacts.load_text(f"runs:/{failed.info.run_id}/traceback.txt")
    assert "RuntimeError: boom on seed 1" in tb
    # rerun: finished cells are skipped, only the failed one runs again
    again = cli.invoke(app, ["run", str(write_suite(suite)), "-q"])
    assert "1 cell(s) ran, 3 skipped" in again.output


def test_runtime_plugin_hooks_are_called(flaky_plugin, registry):
    import flaky_plugin as module

    assert "flaky" in registry.catalogue.methods
    assert registry.catalogue.owners[("method", "flaky")] == "flaky_plugin"
    names = [p["name"] for p in registry.plugins_info()]
    assert "flaky_plugin" in names and "baselines" in names


def test_artifacts_and_tags(workdir, write_suite):
    assert cli.invoke(app, ["run", str(write_suite(tiny_suite(seeds=[0]))), "-q"]).exit_code == 0
    run = next(r for r in _cell_runs("sqlite:///mlflow.db", "tiny") if r.data.tags["bench.method"] == "bpr_mf")
    tags = run.data.tags
    for key in ("bench.cell_hash", "bench.split_id", "bench.dataset", "bench.seed", "bench.protocol_id"):
        assert tags[key]
    arts = {a.path for a in mlflow.MlflowClient(mlflow.get_tracking_uri()).list_artifacts(run.info.run_id)}
    assert {"resolved_config.json", "per_user_metrics.json", "run.trec", "split_diagnostics.json"} <= arts
    trec = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/run.trec").splitlines()
    assert len(trec[0].split()) == 6 and trec[0].split()[3] == "1"
    assert run.data.params["method.params.dim"] == "16"
