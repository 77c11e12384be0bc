"""The plugin author's kit: `bench new-plugin` makes a package whose own tests pass against
the real harness, `bench describe` documents any plugin part, and third-party split
strategies and TTA operators plug in through registration hooks."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.testing import tiny_suite

cli = CliRunner()
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture
def demo_package(workdir):
    out = cli.invoke(app, ["new-plugin", "demo", "--description", "a demo method"])
    assert out.exit_code == 0, out.output
    subprocess.run(PIP + ["install", "--no-deps", "--no-build-isolation", "-e",
                          str(workdir / "demo")], check=True)
    try:
        yield workdir / "demo"
    finally:
        subprocess.run(PIP + ["uninstall", "-y", "demo"], check=True)


def test_new_plugin_installs_and_its_tests_pass(demo_package, workdir):
    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1")
    tests = subprocess.run([sys.executable, "-m", "pytest", "demo", "-q", "-p", "no:cacheprovider"],
                           cwd=workdir, capture_output=True, text=True, env=env)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "4 passed" in tests.stdout
    described = subprocess.run([sys.executable, "-m", "harness.cli", "describe", "demo"],
                               capture_output=True, text=True, env=env)
    assert "demo@demo==0.1.0" in described.stdout and "alpha" in described.stdout


def test_new_plugin_refuses_a_bad_name_or_an_existing_folder(workdir):
    assert cli.invoke(app, ["new-plugin", "9lives"]).exit_code == 2
    (workdir / "taken").mkdir()
    out = cli.invoke(app, ["new-plugin", "taken"])
    assert out.exit_code == 2 and "already exists" in out.output


@pytest.mark.parametrize("name,expected", [
    ("bpr_mf", ["method bpr_mf", "sampler_params", "n_negatives", "[>= 1]"]),
    ("popularity", ["sampler popularity", "beta", "`n`"]),
    ("synthetic", ["dataset synthetic", "n_users", "default task: topk"]),
    ("mrr", ["metric mrr", "usage: mrr", "better: higher"]),
    ("leave_one_out", ["split leave_one_out"]),
    ("tnoise", ["augmenter tnoise", "tasks: sequential"]),
])
def test_describe_documents_every_kind_of_part(name, expected):
    out = cli.invoke(app, ["describe", name], terminal_width=200)
    assert out.exit_code == 0, out.output
    for text in expected:
        assert text in out.output, (text, out.output)


def test_describe_an_unknown_name_exits_2_with_suggestions():
    out = cli.invoke(app, ["describe", "bpr_nf"])
    assert out.exit_code == 2 and "Did you mean: bpr_mf" in out.output


THIRD_PARTY = '''
import numpy as np

from harness.api import AugmenterSpec, SplitSpec
from plugins.tta4sr.operators import View  # the operator contract of the method it serves
from harness.hookspecs import hookimpl


def first_half_test(data, seed=0):
    """Events in index order: the first 80% train, then 10% valid, 10% test."""
    n = len(data)
    idx = np.arange(n)
    return idx[: int(0.8 * n)], idx[int(0.8 * n): int(0.9 * n)], idx[int(0.9 * n):]


def identity(batch, params, model, ctx):
    return [View(tokens=batch.tokens.clone()) for _ in range(params["m"])]


@hookimpl
def bench_register_splits():
    return [SplitSpec("by_index", first_half_test, "by event index", version="3")]


@hookimpl
def bench_register_augmenters():
    return [AugmenterSpec("identity", identity, "no change")]
'''


@pytest.fixture
def third_party(runtime_plugin):
    runtime_plugin("third_party", THIRD_PARTY)


def test_a_third_party_split_runs_and_is_in_the_cell_hash(third_party, run_suite):
    run = run_suite(tiny_suite(datasets=[{"name": "synthetic", "params": {"n_users": 40},
                                          "split": {"strategy": "by_index"}}],
                               methods=[{"name": "pop"}], seeds=[0]))
    assert set(run.statuses.values()) == {"finished"}
    assert "split:by_index=third_party@bench==" in run.runs[0].data.tags["bench.plugin"]
    assert run.runs[0].data.tags["bench.plugin"].split("split:by_index=")[1].split(";")[0].endswith("/v3")


def test_an_unknown_split_strategy_is_refused_with_suggestions(write_suite):
    path = write_suite(tiny_suite(datasets=[{"name": "synthetic", "split": {"strategy": "temporall"}}]))
    out = cli.invoke(app, ["validate", str(path)])
    assert out.exit_code == 2
    assert "datasets[0].split.strategy" in out.output and "Did you mean: temporal" in out.output


def test_a_third_party_tta_operator_is_accepted_and_scored(third_party, registry):
    from harness.runner import prepare_dataset, run_cell
    from harness.suite import SuiteError, validate_suite

    bp = {"dim": 8, "max_len": 12, "epochs": 1, "batch_size": 32}
    suite = {"suite": "tta-third", "seeds": [0], "metrics": ["ndcg@10"],
             "datasets": [{"name": "synthetic", "task": "sequential",
                           "params": {"n_users": 40, "n_items": 30, "n_interactions": 900},
                           "split": {"strategy": "leave_one_out"}}],
             "methods": [{"name": "tta4sr", "params": {"backbone_params": bp,
                                                        "operator": "identity", "m": 2}}]}
    _, cells = validate_suite(suite, registry)
    ds = prepare_dataset(cells[0].dataset, cells[0].task, registry)
    metrics = run_cell(cells[0], ds, registry)[0]
    assert metrics["tta_passes_per_user"] == 2 and metrics["ndcg@10"] >= 0
    suite["methods"][0]["params"]["operator"] = "identty"
    with pytest.raises(SuiteError, match="unknown operator 'identty'"):
        validate_suite(suite, registry)
