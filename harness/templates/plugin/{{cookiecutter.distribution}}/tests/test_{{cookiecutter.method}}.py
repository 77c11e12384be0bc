"""Tests against the real harness, with bench's pytest fixtures (``harness.testing``)."""
from pathlib import Path

import {{ cookiecutter.package }} as plugin
from harness.testing import tiny_suite

SUITE = Path(__file__).resolve().parents[1] / "suite.yaml"


def test_trains_a_ranking_model(tiny_dataset):
    result = plugin.train(tiny_dataset, plugin.{{ cookiecutter.method | title | replace('_', '') }}Params(alpha=0.5))
    scores = result.model.score(__import__("torch").arange(3))
    assert scores.shape == (3, tiny_dataset.n_items)


def test_registers_only_with_the_named_plugins(bench_registry):
    registry = bench_registry(plugin)
    assert plugin.METHOD in registry.catalogue.methods
    assert "bpr_mf" not in registry.catalogue.methods


def test_the_suite_runs_end_to_end(run_suite):
    run = run_suite(tiny_suite(methods=[{"name": "pop"}, {"name": plugin.METHOD}], seeds=[0]))
    assert set(run.statuses.values()) == {"finished"}
    assert run.metrics(plugin.METHOD)["ndcg@10"] > 0


def test_the_shipped_suite_validates(registry):
    from harness.suite import load_suite

    _, cells = load_suite(SUITE, registry)
    assert {c.method.name for c in cells} == {"pop", plugin.METHOD}
