"""bench tune: budget parity, resume, pruning, validation-only scoring, tuned params in runs."""
from __future__ import annotations

import importlib

import numpy as np
import optuna
import pytest
import torch

from harness.api import BenchError, MethodSpec, Params
from harness.hookspecs import hookimpl
from harness.registry import Registry
from harness.scoring import mlflow_name
from harness.suite import validate_suite
from harness.tuning import study_name, tune_suite, tuned_cells

EPOCHS = 6


class CurveParams(Params):
    quality: float = 0.5
    epochs: int = EPOCHS


class PopModel:
    def __init__(self, pop):
        self.pop = torch.as_tensor(pop, dtype=torch.float32)

    def score(self, users):
        return self.pop.unsqueeze(0).expand(len(users), -1).clone()


class FakePlugin:
    """A method whose per-epoch validation curve is ``quality * (epoch + 1)``: pruning
    decisions are then predictable without training anything."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.interrupt_after: int | None = None  # raise KeyboardInterrupt on this train call
        self.calls = 0
        self.epochs_run: list[int] = []

    @hookimpl
    def bench_register_methods(self):
        return [MethodSpec("curve", ("topk",), params=CurveParams)]

    @hookimpl
    def bench_train(self, method, params, dataset, ctx):
        if method != "curve":
            return None
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt
        p = CurveParams(**params)
        name = "valid_" + mlflow_name(ctx.valid_metric)
        run = 0
        try:
            for epoch in range(p.epochs):
                run += 1
                ctx.report(name, p.quality * (epoch + 1), epoch)
        finally:
            self.epochs_run.append(run)
        return PopModel(dataset.item_popularity())

    @hookimpl(tryfirst=True)
    def bench_score(self, part):
        self.parts.append(part)  # observe only; the harness's scorer answers
        return None


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def env(tmp_path):
    reg = Registry(autoload=False)
    fake = FakePlugin()
    reg.register(fake, name="fake")
    reg.register(importlib.import_module("plugins.baselines"), name="baselines")
    return reg, fake, tmp_path


def _suite(name, methods, trials=4, pruner="none", **tuning):
    return {"suite": name, "datasets": [{"name": "synthetic",
                                         "params": {"n_users": 60, "n_items": 80,
                                                    "n_interactions": 1200}}],
            "methods": methods, "seeds": [0, 1], "metrics": ["ndcg@10", "recall@10"],
            "tuning": {"trials": trials, "pruner": pruner,
                       "storage": None, **tuning}}


def _tune(reg, raw, tmp, tracking):
    suite, cells = validate_suite(raw, reg)
    storage = f"sqlite:///{tmp}/optuna.db"
    return suite, cells, storage, tune_suite(suite, cells, reg, storage=storage,
                                             tracking_uri=tracking, cache_dir=tmp)


def _study(suite, cell, storage):
    return optuna.load_study(study_name=study_name(suite, cell), storage=storage)


def test_budget_parity_every_method_gets_the_same_trials(env, tracking):
    reg, fake, tmp = env
    raw = _suite("parity", [
        {"name": "curve", "label": "a", "search": {"quality": {"uniform": [0.0, 1.0]}}},
        {"name": "curve", "label": "b", "search": {"quality": {"choice": [0.2, 0.4, 0.8]},
                                                   "epochs": {"int": [2, 4]}}},
        {"name": "pop"}], trials=3)
    suite, cells, storage, summaries = _tune(reg, raw, tmp, tracking)
    assert [(s.method, s.counted, s.budget) for s in summaries] == [("a", 3, 3), ("b", 3, 3)]
    for cell in cells[::2][:2]:
        states = [t.state.name for t in _study(suite, cell, storage).trials]
        assert states == ["COMPLETE"] * 3
    tuned = tuned_cells(suite, cells, reg, storage=storage)
    budgets = {(c.method.key, c.tags["bench.tuning_trials"], c.tags["bench.tuning_budget"])
               for c in tuned}
    assert budgets == {("a", "3", "3"), ("b", "3", "3"), ("pop", "0", "0")}


def test_tuning_scores_validation_only(env, tracking):
    reg, fake, tmp = env
    raw = _suite("validonly", [{"name": "curve",
                                "search": {"quality": {"uniform": [0.0, 1.0]}}}], trials=3)
    _tune(reg, raw, tmp, tracking)
    # one validation score per trial (the fake method never calls ctx.validate itself)
    assert fake.parts == ["valid"] * 3


def test_resume_after_interruption_counts_only_finished_trials(env, tracking):
    reg, fake, tmp = env
    raw = _suite("resume", [{"name": "curve", "search": {"quality": {"uniform": [0.0, 1.0]}}}],
                 trials=4)
    fake.interrupt_after = 2
    with pytest.raises(KeyboardInterrupt):
        _tune(reg, raw, tmp, tracking)
    suite, cells = validate_suite(raw, reg)
    storage = f"sqlite:///{tmp}/optuna.db"
    assert [t.state.name for t in _study(suite, cells[0], storage).trials] == \
        ["COMPLETE", "COMPLETE", "FAIL"]
    fake.interrupt_after = None
    _, _, _, summaries = _tune(reg, raw, tmp, tracking)
    states = [t.state.name for t in _study(suite, cells[0], storage).trials]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 1 and len(states) == 5
    assert summaries[0].counted == 4 and summaries[0].failed == 1
    # a third call finds the budget spent and trains nothing
    before = fake.calls
    _tune(reg, raw, tmp, tracking)
    assert fake.calls == before


def test_pruning_stops_bad_trials_early(env, tracking):
    reg, fake, tmp = env
    raw = _suite("prune", [{"name": "curve", "search": {"quality": {"uniform": [0.0, 1.0]}}}],
                 trials=8, pruner="median", pruner_startup_trials=2, pruner_warmup_steps=0)
    suite, cells, storage, summaries = _tune(reg, raw, tmp, tracking)
    trials = _study(suite, cells[0], storage).trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert pruned, "the median pruner pruned nothing"
    assert summaries[0].pruned == len(pruned) and summaries[0].counted == 8
    # a pruned trial stopped training before its last epoch, below the running median
    for t in pruned:
        assert max(t.intermediate_values) < EPOCHS - 1
    assert min(fake.epochs_run) < EPOCHS
    # each pruned trial's last value is below the best complete trial's value at that step
    best = max(complete, key=lambda t: t.params["quality"])
    for t in pruned:
        step = max(t.intermediate_values)
        assert t.intermediate_values[step] < best.intermediate_values[step]


def test_same_seed_same_trials(env, tracking, tmp_path_factory):
    reg, fake, tmp = env
    raw = _suite("determinism", [{"name": "curve",
                                  "search": {"quality": {"loguniform": [1e-3, 1.0]}}}], trials=3)
    suite, cells, storage, _ = _tune(reg, raw, tmp, tracking)
    other = tmp_path_factory.mktemp("again")
    _tune(reg, raw, other, tracking)
    a = [t.params for t in _study(suite, cells[0], storage).trials]
    b = [t.params for t in _study(suite, cells[0], f"sqlite:///{other}/optuna.db").trials]
    assert a == b and len({p["quality"] for p in a}) == 3


def test_run_without_tuning_study_is_a_clear_error(env):
    reg, _, tmp = env
    raw = _suite("nostudy", [{"name": "curve", "search": {"quality": {"uniform": [0.0, 1.0]}}}])
    suite, cells = validate_suite(raw, reg)
    with pytest.raises(BenchError, match="bench tune"):
        tuned_cells(suite, cells, reg, storage=f"sqlite:///{tmp}/empty.db")


def test_tuned_bpr_runs_on_test_with_best_params_and_new_hash(env, tracking):
    """The real path: BPR-MF tuned on validation, then run over seeds with the best params."""
    from harness.runner import run_suite
    from harness.tracking import Tracker

    reg, _, tmp = env
    raw = _suite("tuned_bpr", [{"name": "bpr_mf",
                                "params": {"dim": 8, "epochs": 3, "batch_size": 512},
                                "search": {"lr": {"loguniform": [1e-3, 5e-2]},
                                           "dim": {"choice": [4, 8]}}}], trials=3)
    suite, cells, storage, summaries = _tune(reg, raw, tmp, tracking)
    best = summaries[0].best_params
    tuned = tuned_cells(suite, cells, reg, storage=storage)
    assert all(c.method_params["lr"] == best["lr"] and c.method_params["dim"] == best["dim"]
               for c in tuned)
    assert tuned[0].content_hash("s", "p") != cells[0].content_hash("s", "p")
    results = run_suite(suite, tuned, reg, tracking_uri=tracking, cache_dir=tmp)
    assert [r.status for r in results] == ["finished", "finished"]
    tracker = Tracker(tracking, "tuned_bpr")
    runs = tracker.client.search_runs([tracker.experiment_id],
                                      "tags.`bench.kind` = 'cell'")
    assert {r.data.tags["bench.tuning_trials"] for r in runs} == {"3"}
    assert {float(r.data.params["method.params.lr"]) for r in runs} == {best["lr"]}
    trials = tracker.client.search_runs([tracker.experiment_id], "tags.`bench.kind` = 'trial'")
    studies = tracker.client.search_runs([tracker.experiment_id], "tags.`bench.kind` = 'study'")
    assert len(trials) == 3 and len(studies) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {studies[0].info.run_id}
    assert np.isfinite([r.data.metrics["final_valid_ndcg@10".replace("@", "_at_")]
                        for r in trials]).all()


def test_grid_sampler_visits_every_point_once_and_the_board_shows_the_choice(env, tracking):
    """sampler: grid (e.g. HNLMRec's alpha from the spec's range): each value is tried
    exactly once on validation, the best is run, and the board's budget cell names it."""
    from harness.leaderboard.aggregate import Row
    from harness.leaderboard.runs import RunRecord

    reg, _, tmp = env
    raw = _suite("grid", [{"name": "curve", "label": "g",
                           "search": {"quality": {"choice": [0.2, 0.8, 0.4]}}}],
                 trials=3, sampler="grid")
    suite, cells, storage, summaries = _tune(reg, raw, tmp, tracking)
    trials = _study(suite, cells[0], storage).trials
    assert sorted(t.params["quality"] for t in trials) == [0.2, 0.4, 0.8]
    best = _study(suite, cells[0], storage).best_trial.params["quality"]
    assert summaries[0].best_params == {"quality": best}
    tuned = tuned_cells(suite, cells, reg, storage=storage)
    assert {c.method_params["quality"] for c in tuned} == {best}
    tags = tuned[0].tags
    assert tags["bench.tuning_sampler"] == "grid"
    row = Row("g", [RunRecord("r", "g", "d", "0", "s", "p", {}, dict(tags), 0)])
    assert row.budget == f"3/3 trials (grid, chose quality={best:g})"
    # resuming a finished grid adds no trial
    _tune(reg, raw, tmp, tracking)
    assert len(_study(suite, cells[0], storage).trials) == 3


def test_grid_resume_retries_a_failed_point_instead_of_repeating_a_finished_one(env, tracking):
    """A kill fails the trial in flight; Optuna's grid sampler counts a failed point as
    visited, so the resumed study must queue that point again to try every point once."""
    reg, fake, tmp = env
    raw = _suite("grid-resume", [{"name": "curve", "search": {"quality": {"choice": [0.1, 0.2, 0.3]}}}],
                 trials=3, sampler="grid")
    fake.interrupt_after = 1
    with pytest.raises(KeyboardInterrupt):
        _tune(reg, raw, tmp, tracking)
    suite, cells = validate_suite(raw, reg)
    storage = f"sqlite:///{tmp}/optuna.db"
    assert [t.state.name for t in _study(suite, cells[0], storage).trials] == ["COMPLETE", "FAIL"]
    fake.interrupt_after = None
    _tune(reg, raw, tmp, tracking)
    trials = _study(suite, cells[0], storage).trials
    finished = sorted(t.params["quality"] for t in trials if t.state.name == "COMPLETE")
    assert finished == [0.1, 0.2, 0.3], [(t.state.name, t.params, t.system_attrs) for t in trials]


def test_a_finished_cell_whose_tuned_params_are_its_own_gets_the_tuning_tags(env, tracking):
    """`bench run` first, `bench tune --then-run` after: when the search chooses the params
    a finished cell already ran (same hash), the cell is not run again and its run is
    tagged with the tuning, so the board shows the search, not "untuned"."""
    from harness.runner import run_suite
    from harness.tracking import Tracker

    reg, _, tmp = env
    raw = _suite("retag", [{"name": "curve", "label": "g", "params": {"quality": 0.8},
                            "search": {"quality": {"choice": [0.8]}}}], trials=1,
                 sampler="grid")
    suite, cells = validate_suite(raw, reg)
    first = run_suite(suite, cells, reg, tracking_uri=tracking, cache_dir=tmp)
    assert [r.status for r in first] == ["finished", "finished"]
    tracker = Tracker(tracking, "retag")
    cell_runs = "tags.`bench.kind` = 'cell'"
    runs = tracker.client.search_runs([tracker.experiment_id], cell_runs)
    assert not any("bench.tuning_trials" in r.data.tags for r in runs)
    suite, cells, storage, _ = _tune(reg, raw, tmp, tracking)
    tuned = tuned_cells(suite, cells, reg, storage=storage)
    again = run_suite(suite, tuned, reg, tracking_uri=tracking, cache_dir=tmp)
    assert [r.status for r in again] == ["skipped", "skipped"]
    runs = tracker.client.search_runs([tracker.experiment_id], cell_runs)
    assert len(runs) == 2
    assert {r.data.tags["bench.tuning_trials"] for r in runs} == {"1"}
    assert {r.data.tags["bench.tuned_params"] for r in runs} == {'{"quality": 0.8}'}
