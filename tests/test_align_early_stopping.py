"""Online alignment arms stop on validation like every recsys arm (``early_stop``).

With ``early_stop: true`` TRPA's loop and trl's GRPO / Online DPO (through a callback) stop
after ``patience`` evaluations without a new best and return the best-on-validation
weights; the validation curve is scripted here so the stop point is known in advance."""
import pytest
import torch

import plugins.trpa as trpa
import plugins.trpa.loop as loop
import plugins.trpa.trl_baselines as trl_baselines
from align_fixtures import ONLINE, run_arithmetic_arms
from harness.api import BestOnValidation

torch.set_num_threads(1)


def _scripted_validation(monkeypatch, values: list[float]) -> list[int]:
    """Replace the validation pass by ``values`` in order (the last one repeats); returns
    the list of rollout-batch counts at which an evaluation happened."""
    calls: list[int] = []

    def fake(ctx, policy, data, step, every, last):
        if not every or not (step % every == 0 or last):
            return None
        value = values[min(len(calls), len(values) - 1)]
        calls.append(step)
        policy.log("valid_" + ctx.valid_metric, step, value)
        return value

    monkeypatch.setattr(loop, "validate_every", fake)
    monkeypatch.setattr(trl_baselines, "validate_every", fake)
    return calls


def _weights_equal_start(monkeypatch) -> dict[str, bool]:
    """Per method: does the aligned policy returned by ``align`` have the start's weights?"""
    seen: dict[str, bool] = {}
    original = trpa.align

    def spy(method, params, policy, dataset, ctx):
        out = original(method, params, policy, dataset, ctx)
        start = dict(out.init_model.named_parameters())
        seen[method] = all(torch.equal(p, start[n]) for n, p in out.model.named_parameters())
        return out

    monkeypatch.setattr(trpa, "align", spy)
    return seen


def _run(tmp_path, methods, **over):
    params = {"steps": 6, "updates_per_batch": 2, "eval_every": 1, "patience": 2, "lr": 1e-2,
              **over}
    return run_arithmetic_arms(tmp_path, methods, params, "align-early-stop")


@pytest.mark.parametrize("method", ONLINE)
def test_an_arm_whose_start_is_best_stops_after_patience_and_returns_the_start(
        tmp_path, monkeypatch, method):
    calls = _scripted_validation(monkeypatch, [0.5, 0.2, 0.1])
    same = _weights_equal_start(monkeypatch)
    m = _run(tmp_path, [method], early_stop=True)[method]
    assert calls == [0, 1, 2]  # start, then two evaluations without a new best: stop
    assert m["rollout_batches"] == 2 and m["optimizer_steps"] == 4, m
    assert m["epochs_run"] == 2 and m["epoch_budget"] == 6 and m["still_improving"] == 0.0
    assert m["best_epoch"] == -1  # the start (0 rollout batches done)
    assert same[method], "the best-on-validation weights (the start) were not restored"


def test_without_early_stop_the_whole_budget_runs_and_the_last_policy_is_kept(
        tmp_path, monkeypatch):
    calls = _scripted_validation(monkeypatch, [0.5, 0.2, 0.1])
    same = _weights_equal_start(monkeypatch)
    m = _run(tmp_path, ["trpa"])["trpa"]
    assert calls == [0, 1, 2, 3, 4, 5, 6]
    assert m["rollout_batches"] == 6 and m["epochs_run"] == 6
    assert not same["trpa"]


def test_a_rising_curve_runs_the_whole_budget_and_is_flagged(tmp_path, monkeypatch):
    _scripted_validation(monkeypatch, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    m = _run(tmp_path, ["trl_grpo"], early_stop=True)["trl_grpo"]
    assert m["rollout_batches"] == 6 and m["optimizer_steps"] == 12
    assert m["best_epoch"] == 5 and m["still_improving"] == 1.0


def test_best_on_validation_keeps_the_earliest_best_and_restores_it():
    model = torch.nn.Linear(2, 1)
    best = BestOnValidation(patience=2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert not best.update(0.5, 0, model)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert not best.update(0.5, 1, model)  # a tie is not a new best
    with torch.no_grad():
        model.weight.fill_(3.0)
    assert best.update(0.4, 2, model)  # second evaluation without a new best: stop
    best.restore(model)
    assert best.step == 0 and torch.all(model.weight == 1.0)
