"""A sampled validation pass logs the policy's KL to its start as a curve beside the
validation metric, so online arms that early stopping ended at different lengths can be
compared at equal rollout batches (the trust-region claim of the ablation board)."""
import pytest
import torch
from mlflow.tracking import MlflowClient

from align_fixtures import run_arithmetic_arms

torch.set_num_threads(1)


def _history(tmp_path, name: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    exp = client.get_experiment_by_name("valid-curves")
    out = {}
    for run in client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'cell'"):
        points = client.get_metric_history(run.info.run_id, name)
        out[run.data.tags["bench.method"]] = sorted((p.step, p.value) for p in points)
    return out


@pytest.mark.parametrize("method", ["trpa", "trl_grpo"])
def test_sampled_validation_logs_the_kl_to_the_start_at_every_evaluation(tmp_path, method):
    params = {"steps": 3, "updates_per_batch": 1, "eval_every": 1, "lr": 1e-2}
    run_arithmetic_arms(tmp_path, [method], params, "valid-curves",
                        valid_metric="accuracy_sampled")
    kl = _history(tmp_path, "valid_kl_init")[method]
    acc = _history(tmp_path, "valid_accuracy_sampled")[method]
    assert [s for s, _ in kl] == [s for s, _ in acc] == [0, 1, 2, 3]  # one per evaluation
    assert kl[0][1] == 0.0  # before any update the policy is its start
    assert any(v != 0.0 for _, v in kl[1:])  # then it moves (lr 1e-2)


def test_greedy_validation_draws_no_samples_for_it(tmp_path):
    """Greedy validation samples nothing, so there is no KL curve (and no extra cost)."""
    params = {"steps": 2, "updates_per_batch": 1, "eval_every": 1, "lr": 1e-3}
    run_arithmetic_arms(tmp_path, ["trpa"], params, "valid-curves", valid_metric="accuracy")
    assert _history(tmp_path, "valid_kl_init")["trpa"] == []
    assert len(_history(tmp_path, "valid_accuracy")["trpa"]) == 3
