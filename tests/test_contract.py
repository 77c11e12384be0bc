"""The plugin contract as the runner keeps it: observers see failed cells, loaders get a
context they can delegate through, ``bench_train`` may return a TrainResult or a bare
model, and every plugin part a cell uses (with its version) is in the cell hash."""
from __future__ import annotations

import json

import mlflow
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.testing import tiny_suite

cli = CliRunner()

CONTRACT_PLUGIN = '''
import json
import os

import torch

from harness.api import DatasetSpec, MethodSpec, Params, SamplerSpec, TrainResult
from harness.hookspecs import hookimpl


class SamplerUser(Params):
    sampler: str = "uniform"


class Popularity:
    def __init__(self, dataset):
        self.pop = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)

    def score(self, users):
        return self.pop.expand(len(users), -1).clone()


@hookimpl
def bench_register_methods():
    return [MethodSpec("bare", ("topk",), "returns a bare model with .history"),
            MethodSpec("wrapped", ("topk",), "returns a TrainResult"),
            MethodSpec("boom", ("topk",), "always fails"),
            MethodSpec("sampling", ("topk",), "draws negatives once", params=SamplerUser)]


@hookimpl
def bench_register_samplers():
    return [SamplerSpec("versioned", "uniform draws; version from the environment",
                        version=os.environ.get("VERSIONED_SAMPLER", "1"))]


@hookimpl
def bench_register_datasets():
    return [DatasetSpec("small-synthetic", ("topk",), "synthetic, through another plugin's loader")]


@hookimpl
def bench_load_dataset(name, params, ctx):
    if name != "small-synthetic":
        return None
    return ctx.load_dataset("synthetic", {"n_users": 40, "n_items": 50, "n_interactions": 600,
                                          "seed": params.get("seed", 0)})


@hookimpl
def bench_sample_negatives(sampler, users, dataset, ctx):
    if sampler != "versioned":
        return None
    return torch.randint(dataset.n_items, (len(users),), generator=ctx.rng("versioned"))


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method == "boom":
        raise RuntimeError("boom")
    if method == "bare":
        model = Popularity(dataset)
        model.history = {"best_epoch": 3.0}
        return model
    if method == "wrapped":
        return TrainResult(Popularity(dataset), {"best_epoch": 7.0})
    if method == "sampling":
        users, items = dataset.train_pairs()
        ctx.sample_negatives(params["sampler"], {"n": 1}, users[:8], items[:8], None, dataset)
        return Popularity(dataset)
    return None


@hookimpl
def bench_on_cell_end(cell, ctx, result):
    with open("cell_end.jsonl", "a") as f:
        f.write(json.dumps({"method": cell.method.name, "seed": cell.seed,
                            "status": result.status, "error": result.error,
                            "has_ctx": ctx is not None}) + "\\n")
'''


@pytest.fixture
def contract_plugin(workdir, runtime_plugin):
    runtime_plugin("contract_plugin", CONTRACT_PLUGIN)
    return workdir


def _ends(workdir) -> list[dict]:
    path = workdir / "cell_end.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _runs(suite: str):
    from harness.tracking import absolute_uri

    uri = absolute_uri("sqlite:///mlflow.db")
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(suite)
    return client.search_runs([exp.experiment_id], filter_string="tags.`bench.kind` = 'cell'")


def test_on_cell_end_is_called_for_failed_cells_too(contract_plugin, write_suite):
    suite = tiny_suite(methods=[{"name": "boom"}, {"name": "bare"}], seeds=[0])
    out = cli.invoke(app, ["run", str(write_suite(suite)), "-q"])
    assert out.exit_code == 1, out.output
    ends = {e["method"]: e for e in _ends(contract_plugin)}
    assert ends["boom"]["status"] == "failed" and "boom" in ends["boom"]["error"]
    assert ends["boom"]["has_ctx"]
    assert ends["bare"]["status"] == "finished"


def test_on_cell_end_is_called_when_the_dataset_fails_to_load(contract_plugin, write_suite,
                                                              workdir, monkeypatch):
    # a missing `path` is refused by validate; ml-100k absent from an empty data home
    # only fails when the run loads it
    monkeypatch.setenv("BENCH_DATA_HOME", str(workdir / "empty-data-home"))
    suite = tiny_suite(datasets=[{"name": "ml-100k"}], methods=[{"name": "pop"}], seeds=[0])
    assert cli.invoke(app, ["run", str(write_suite(suite)), "-q"]).exit_code == 1
    assert [e["status"] for e in _ends(contract_plugin)] == ["failed"]


def test_a_loader_delegates_through_its_context(contract_plugin, write_suite):
    suite = tiny_suite(datasets=[{"name": "small-synthetic", "params": {"seed": 2}}],
                       methods=[{"name": "pop"}], seeds=[0])
    out = cli.invoke(app, ["run", str(write_suite(suite)), "-q"])
    assert out.exit_code == 0, out.output
    run, = _runs("tiny")
    diag = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/split_diagnostics.json")
    assert diag["n_users"] <= 40 and diag["n_items"] <= 50


def test_train_result_and_bare_model_histories_are_logged(contract_plugin, write_suite):
    suite = tiny_suite(methods=[{"name": "bare"}, {"name": "wrapped"}], seeds=[0])
    assert cli.invoke(app, ["run", str(write_suite(suite)), "-q"]).exit_code == 0
    best = {r.data.tags["bench.method"]: r.data.metrics["best_epoch"] for r in _runs("tiny")}
    assert best == {"bare": 3.0, "wrapped": 7.0}


def test_a_sampler_version_bump_reruns_its_cells(contract_plugin, write_suite, monkeypatch):
    suite = tiny_suite(methods=[{"name": "sampling", "params": {"sampler": "versioned"}},
                                {"name": "sampling", "label": "uniform-user",
                                 "params": {"sampler": "uniform"}}], seeds=[0])
    path = write_suite(suite)
    monkeypatch.setenv("VERSIONED_SAMPLER", "1")
    assert "2 cell(s) ran, 0 skipped" in cli.invoke(app, ["run", str(path), "-q"]).output
    assert "0 cell(s) ran, 2 skipped" in cli.invoke(app, ["run", str(path), "-q"]).output
    monkeypatch.setenv("VERSIONED_SAMPLER", "2")
    out = cli.invoke(app, ["run", str(path), "-q"])
    assert "1 cell(s) ran, 1 skipped" in out.output, out.output  # only the versioned sampler's cell
    tags = [r.data.tags["bench.plugin"] for r in _runs("tiny")
            if r.data.tags["bench.method"] == "sampling"]
    versioned = [t for t in tags if "sampler:versioned=" in t]
    assert any("sampler:versioned=contract_plugin@bench==" in t and t.split("sampler:versioned=")[1]
               .split(";")[0].endswith("/v2") for t in versioned), versioned


def test_the_plugin_tag_names_every_part_a_cell_uses(workdir, write_suite):
    suite = tiny_suite(methods=[{"name": "bpr_mf", "params": {"dim": 8, "epochs": 1,
                                                              "sampler": "popularity"}}],
                       seeds=[0], metrics=["ndcg@10", "mrr"])
    assert cli.invoke(app, ["run", str(write_suite(suite)), "-q"]).exit_code == 0
    run, = _runs("tiny")
    parts = dict(p.split("=", 1) for p in run.data.tags["bench.plugin"].split("; "))
    assert set(parts) == {"method:bpr_mf", "dataset:synthetic", "split:random_ratio",
                          "metric:ndcg", "metric:mrr", "sampler:popularity"}
    assert parts["method:bpr_mf"].startswith("baselines@")
    assert parts["dataset:synthetic"].startswith("bench.core@bench==")


EASE_PLUGIN = '''
import numpy as np
import torch
from pydantic import Field

from harness.api import MethodSpec, Params, TrainResult
from harness.hookspecs import hookimpl

SEEN = []


class EASEParams(Params):
    lambda_: float = Field(250.0, alias="lambda", gt=0)


class EASE:
    def __init__(self, train, weights):
        self.train, self.weights = train, weights

    def score(self, users):
        return self.train[users] @ self.weights


@hookimpl
def bench_register_methods():
    return [MethodSpec("ease_test", ("topk",), "EASE (Steck 2019): closed-form item-item model",
                       params=EASEParams)]


@hookimpl
def bench_train(method, params, dataset):
    if method != "ease_test":
        return None
    SEEN.append(dict(params))
    p = EASEParams(**params)
    x = dataset.train_matrix.toarray().astype(np.float64)
    g = x.T @ x + p.lambda_ * np.eye(x.shape[1])
    inv = np.linalg.inv(g)
    b = -inv / np.diag(inv)[None, :]
    np.fill_diagonal(b, 0.0)
    return TrainResult(EASE(torch.from_numpy(x).float(), torch.from_numpy(b).float()))
'''


@pytest.fixture
def ease_plugin(runtime_plugin):
    runtime_plugin("ease_plugin", EASE_PLUGIN)


def test_an_aliased_param_reaches_the_plugin_and_mlflow_as_written(ease_plugin, write_suite):
    import ease_plugin

    suite = tiny_suite(methods=[{"name": "pop"}, {"name": "ease_test", "params": {"lambda": 50.0}}],
                       seeds=[0])
    path = write_suite(suite)
    assert cli.invoke(app, ["validate", str(path)]).exit_code == 0
    out = cli.invoke(app, ["run", str(path), "-q"])
    assert out.exit_code == 0, out.output
    assert ease_plugin.SEEN == [{"lambda": 50.0}]
    run = next(r for r in _runs("tiny") if r.data.tags["bench.method"] == "ease_test")
    assert run.data.params["method.params.lambda"] == "50.0"
    assert run.data.tags["bench.status"] == "finished" and run.data.metrics["ndcg_at_10"] > 0
    # the default is filled in under the alias too, and a typo names the alias
    bad = tiny_suite(methods=[{"name": "ease_test", "params": {"lambd": 1.0}}], seeds=[0])
    res = cli.invoke(app, ["validate", str(write_suite(bad, "bad.yaml"))])
    assert res.exit_code == 2 and "Did you mean: lambda" in res.output


def test_an_aliased_param_can_be_searched(ease_plugin, write_suite, registry):
    from harness.suite import load_suite

    suite = tiny_suite(methods=[{"name": "ease_test", "search": {"lambda": {"loguniform": [1, 100]}}}],
                       tuning={"trials": 2}, seeds=[0])
    _, cells = load_suite(write_suite(suite), registry)
    assert cells[0].method_params == {"lambda": 250.0}


def test_context_child_seeds_streams_and_globals_and_can_be_quiet(registry):
    import torch

    from harness.api import Context

    logged, reported = [], []
    ctx = Context(registry=registry, seed=3, metrics=["ndcg@10"], valid_metric="ndcg@10",
                  log_metrics=lambda m, step=None: logged.append(m))
    ctx.on_report.append(lambda *a: reported.append(a))
    parent_draw = torch.rand(1, generator=ctx.rng("s"))
    # a child with another seed: its streams and the global RNG start as a seed-7 cell's
    child = ctx.child(seed=7)
    global_draw = torch.rand(1)
    fresh = Context(registry=registry, seed=7, metrics=[], valid_metric="")
    assert torch.equal(torch.rand(1, generator=child.rng("s")), torch.rand(1, generator=fresh.rng("s")))
    torch.manual_seed(7)
    assert torch.equal(global_draw, torch.rand(1))
    # the parent's stream is not shifted by the child's draws
    assert not torch.equal(torch.rand(1, generator=ctx.rng("s")), parent_draw)
    # quiet: the sub-run's curves are neither logged nor reported to the tuner
    quiet = ctx.child(quiet=True)
    quiet.report("valid_ndcg_at_10", 0.5, 0)
    assert logged == [] and reported == [] and quiet.seed == 3
    ctx.report("valid_ndcg_at_10", 0.5, 0)
    assert len(logged) == 1 and len(reported) == 1


def test_dataset_memo_builds_once(tiny_dataset):
    calls = []
    build = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert tiny_dataset.memo(("k", 1), build) == 1 and tiny_dataset.memo(("k", 1), build) == 1
    assert tiny_dataset.memo(("k", 2), build) == 2 and len(calls) == 2
