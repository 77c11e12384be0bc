"""A cell never records garbage as finished (issue 22 item 4, issue 13): a NaN or infinite
metric, a model whose every score is NaN, a diverged training loss and a training run
without a single optimiser step each fail the cell with a message."""
from __future__ import annotations

import math
import types

import pytest
import torch

from harness.testing import tiny_suite
from harness.api import BenchError, MethodSpec, Params
from harness.hookspecs import hookimpl
from harness.runner import _check_finite, run_suite
from harness.suite import validate_suite
from harness.training import fit


class _Ctx:
    valid_metric = "ndcg@10"

    def log_metrics(self, *a, **k):
        pass

    def validate(self, model, dataset):
        return 0.0

    def report(self, *a, **k):
        pass


def test_non_finite_metric_fails_with_its_name():
    _check_finite({"ndcg@10": 0.1, "recall@10": 0.2}, ("ndcg@10", "recall@10"), "test")
    for bad in (math.nan, math.inf):
        with pytest.raises(BenchError, match="recall@10"):
            _check_finite({"ndcg@10": 0.1, "recall@10": bad}, ("ndcg@10", "recall@10"), "test")


def test_diverged_loss_fails_training():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def epoch(e):
        opt.step()
        return float("nan") if e == 1 else 1.0

    with pytest.raises(BenchError, match="diverged.*epoch 2"):
        fit(model, epoch, None, _Ctx(), epochs=3)


def test_training_without_an_optimiser_step_fails():
    with pytest.raises(BenchError, match="without one optimiser step"):
        fit(torch.nn.Linear(2, 1), lambda e: 0.0, None, _Ctx(), epochs=2)
    with pytest.raises(BenchError, match="at least 1"):
        fit(torch.nn.Linear(2, 1), lambda e: 0.0, None, _Ctx(), epochs=0)


class _NaNModel:
    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def score(self, users):
        return torch.full((len(users), self.n_items), float("nan"))


def _nan_plugin():
    mod = types.ModuleType("nan_plugin")

    @hookimpl
    def bench_register_methods():
        return [MethodSpec("nan_model", ("topk",), "scores NaN", params=Params)]

    @hookimpl
    def bench_train(method, params, dataset):
        return _NaNModel(dataset.n_items) if method == "nan_model" else None

    mod.bench_register_methods, mod.bench_train = bench_register_methods, bench_train
    return mod


def test_all_nan_scores_fail_the_cell_and_the_grid_goes_on(workdir, registry):
    registry.register(_nan_plugin(), name="nan_plugin")
    suite, cells = validate_suite(tiny_suite(methods=[{"name": "nan_model"}, {"name": "pop"}],
                                             seeds=[0]), registry)
    nan_cell, pop_cell = run_suite(suite, cells, registry)
    assert nan_cell.status == "failed" and "no item with a finite score" in nan_cell.error
    assert pop_cell.status == "finished"
