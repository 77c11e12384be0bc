"""Every online arm takes the same number of optimiser steps per rollout batch (μ).

Counted on what really ran: ``optimizer_steps`` is the runner's count of torch optimiser
steps (torch's global step hook, so trl's and accelerate's steps count too) and
``rollout_batches`` the calls to the policy's ``generate`` during training."""
import pytest
import torch

from align_fixtures import ONLINE, run_arithmetic_arms

torch.set_num_threads(1)


def _run(tmp_path, mu: int, eval_every: int = 0, valid_metric: str = "accuracy"):
    params = {"steps": 2, "updates_per_batch": mu, "eval_every": eval_every, "lr": 1e-3}
    return run_arithmetic_arms(tmp_path, ONLINE, params, f"equal-updates-{mu}", valid_metric)


@pytest.mark.parametrize("mu", [1, 3])
def test_online_arms_take_mu_optimiser_steps_per_rollout_batch(tmp_path, mu):
    metrics = _run(tmp_path, mu)
    per_batch = {}
    for method, m in metrics.items():
        assert m["rollout_batches"] == 2, (method, m["rollout_batches"])
        assert m["updates_per_batch"] == mu
        per_batch[method] = m["optimizer_steps"] / m["rollout_batches"]
    assert per_batch == {m: float(mu) for m in ONLINE}, per_batch


def test_validation_generation_is_not_counted_as_a_rollout(tmp_path):
    """Validation on sampled accuracy (greedy and sampled generation) every rollout batch:
    still 2 rollout batches; the curve gives the budget fields and the drawdown."""
    metrics = _run(tmp_path, 2, eval_every=1, valid_metric="accuracy_sampled")
    for method, m in metrics.items():
        assert m["rollout_batches"] == 2 and m["optimizer_steps"] == 4, (method, m)
        assert m["epoch_budget"] == 2 and "still_improving" in m and m["valid_drawdown"] >= 0


def test_fixed_step_runs_log_best_batch_and_the_validation_drawdown():
    from plugins.trpa import under_training_flag

    peaked = [(0, 0.1), (50, 0.4), (100, 0.3), (150, 0.35), (200, 0.4)]  # tie: first counts
    flat = under_training_flag(peaked, 200, 50)
    assert flat["still_improving"] == 0.0 and flat["best_epoch"] == 49
    assert flat["epochs_run"] == 200 and flat["valid_drawdown"] == pytest.approx(0.1)
    rising = [(0, 0.1), (50, 0.2), (100, 0.3), (150, 0.35), (200, 0.4)]
    assert under_training_flag(rising, 200, 50)["valid_drawdown"] == 0.0
