"""Search spaces and tuning blocks: clear errors naming the file, the key path and the fix."""
from __future__ import annotations

import copy
import importlib

import optuna
import pytest

from harness.registry import Registry
from harness.suite import SuiteError, validate_suite


@pytest.fixture(scope="module")
def reg():
    r = Registry(autoload=False)
    r.register(importlib.import_module("plugins.baselines"), name="baselines")
    return r


BASE = {"suite": "space", "datasets": [{"name": "synthetic"}],
        "methods": [{"name": "pop"},
                    {"name": "lightgcn", "params": {"epochs": 2},
                     "search": {"lr": {"loguniform": [1e-4, 1e-2]}, "n_layers": {"choice": [1, 2, 3]},
                                "dim": {"int": [32, 128, 32]}}}],
        "tuning": {"trials": 5}}


def _error(reg, mutate) -> str:
    raw = copy.deepcopy(BASE)
    mutate(raw)
    with pytest.raises(SuiteError) as exc:
        validate_suite(raw, reg, source="s.yaml")
    return str(exc.value)


def test_valid_space_maps_onto_optuna(reg):
    suite, cells = validate_suite(copy.deepcopy(BASE), reg)
    assert suite.tuning.metric == suite.valid_metric == "ndcg@10"
    assert suite.tuning.direction == "maximize" and suite.tuning.seed == 0
    trial = optuna.trial.FixedTrial({"lr": 1e-3, "n_layers": 2, "dim": 64})
    space = cells[-1].method.search
    assert {k: d.suggest(trial, k) for k, d in space.items()} == {"lr": 1e-3, "n_layers": 2, "dim": 64}


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["methods"][1]["search"].update(layers={"choice": [1, 2]}),
     "s.yaml: methods[1].search.layers: 'layers' is not a parameter of method 'lightgcn'. "
     "Did you mean: n_layers"),
    (lambda r: r["methods"][1]["search"].update(lr={"log_uniform": [1e-4, 1e-2]}),
     "s.yaml: methods[1].search.lr: unknown search kind 'log_uniform'. Did you mean: loguniform"),
    (lambda r: r["methods"][1]["search"].update(lr={"loguniform": [0, 1e-2]}),
     "methods[1].search.lr: loguniform: low must be positive, got 0"),
    (lambda r: r["methods"][1]["search"].update(lr={"uniform": [0.1, 0.01]}),
     "methods[1].search.lr: uniform: low must be below high"),
    (lambda r: r["methods"][1]["search"].update(dim={"int": [32, 128, 0]}),
     "methods[1].search.dim: int: step must be positive"),
    (lambda r: r["methods"][1]["search"].update(dim={"uniform": [8.5, 64]}),
     "methods[1].search.dim: uniform value 8.5 is not a valid 'dim'"),
    (lambda r: r["methods"][1]["search"].update(n_layers={"choice": [1, "deep"]}),
     "methods[1].search.n_layers: choice value 'deep' is not a valid 'n_layers'"),
    (lambda r: r["methods"][1]["search"].update(lr={"loguniform": [1e-4, 1e-2], "choice": [1]}),
     "methods[1].search.lr: a searched parameter is a mapping with exactly one of"),
    (lambda r: r.pop("tuning"),
     "methods[1].search: 'lightgcn' has a search space but the suite has no `tuning:` block"),
    (lambda r: r["tuning"].update(trails=3),
     "s.yaml: tuning: unknown key 'trails'. Did you mean: trials"),
    (lambda r: r["tuning"].update(trials=0), "tuning.trials: Input should be greater than or equal to 1"),
    (lambda r: r["tuning"].update(sampler="cmaes"),
     "tuning.sampler: Input should be 'tpe', 'random' or 'grid'"),
    (lambda r: r["tuning"].update(sampler="grid"),
     "methods[1].search.lr: tuning.sampler 'grid' needs finite dimensions (choice or int), "
     "not loguniform"),
    (lambda r: (r["methods"][1]["search"].pop("lr"), r["tuning"].update(sampler="grid")),
     "methods[1].search: 'lightgcn' has a grid of 12 point(s) but tuning.trials is 5; "
     "with sampler 'grid' they must be equal"),
    (lambda r: r["tuning"].update(metric="ndcg"), "metrics: 'ndcg' needs a cutoff"),
])
def test_search_space_errors_are_clear(reg, mutate, expected):
    assert expected in _error(reg, mutate)


def test_grid_enumerates_finite_dimensions(reg):
    raw = copy.deepcopy(BASE)
    raw["methods"][1]["search"].pop("lr")
    raw["tuning"].update(sampler="grid", trials=12)
    suite, cells = validate_suite(raw, reg)
    space = cells[-1].method.search
    assert space["n_layers"].grid() == [1, 2, 3]
    assert space["dim"].grid() == [32, 64, 96, 128]


def test_null_search_means_no_search_space(reg):
    """`search: null` (how an extending suite turns a tuned arm into a fixed one) needs no
    tuning block."""
    raw = copy.deepcopy(BASE)
    raw["methods"][1]["search"] = None
    raw.pop("tuning")
    _, cells = validate_suite(raw, reg)
    assert cells[-1].method.search == {}
