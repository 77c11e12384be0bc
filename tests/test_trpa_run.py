"""TRPA end to end through the runner on a tiny Knights-and-Knaves task."""
import torch

from harness.registry import Registry
from harness.runner import run_suite
from harness.suite import validate_suite

torch.set_num_threads(1)
#: the tiny policy both tests warm-start (one SFT cache entry per test's tmp dir)
LLM = {"layers": 1, "dim": 32, "heads": 2, "ffn_mult": 2, "max_positions": 160,
       "sft_steps": 15, "sft_batch_size": 16}


def test_trpa_cell_runs_logs_levels_and_an_active_trust_region(tmp_path):
    params = {"steps": 2, "prompts_per_step": 2, "samples_per_prompt": 4, "max_new_tokens": 32,
              "updates_per_batch": 2, "eval_every": 1, "lr": 1e-3, "llm": LLM}
    raw = {"suite": "trpa-test",
           "datasets": [{"name": "knights_knaves",
                         "params": {"n_train": 12, "n_valid": 4, "n_test": 6, "eval_samples": 1,
                                    "max_new_tokens": 32}}],
           "methods": [{"name": "trpa", "params": params},
                       {"name": "sft_init", "params": {k: v for k, v in params.items()
                                                       if k != "updates_per_batch"}}],
           "seeds": [0], "metrics": ["accuracy", "format_valid", "kl_init", "reward_gap"],
           "valid_metric": "accuracy"}
    reg = Registry()
    suite, cells = validate_suite(raw, reg)
    uri = f"sqlite:///{tmp_path}/m.db"
    results = run_suite(suite, cells, reg, tracking_uri=uri, cache_dir=tmp_path)
    assert [r.status for r in results] == ["finished", "finished"], [r.error for r in results]
    trpa, sft = results[0].metrics, results[1].metrics
    for m in (trpa, sft):
        assert abs(sum(m[f"level_{k}"] for k in (1, 2, 3, 4)) - 1) < 1e-9
        assert "accuracy_d2" in m and "accuracy_d3" in m
    assert abs(sft["kl_init"]) < 1e-6  # the initial policy is its own reference
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("trpa-test").experiment_id
    run = client.search_runs([exp], filter_string="tags.`bench.method` = 'trpa'")[0]
    tr = client.get_metric_history(run.info.run_id, "tr_kl")
    assert len(tr) == 2 and all(p.value > 0 for p in tr)  # μ = 2: the TR term is active
    assert len(client.get_metric_history(run.info.run_id, "valid_accuracy")) == 3


def test_old_reference_ablation_measures_the_log_ratio_against_pi_old(tmp_path):
    """With one inner step, π_θ = π_old when the gradient is taken, so against π_old every
    log-ratio is 0 and the pair loss is exactly log 2 at every step; against the fixed
    initial model it moves away from log 2 once the policy has been updated."""
    import math

    import mlflow

    base = {"steps": 3, "prompts_per_step": 2, "samples_per_prompt": 4, "max_new_tokens": 32,
            "updates_per_batch": 1, "eval_every": 0, "lr": 1e-2, "llm": LLM}
    raw = {"suite": "trpa-ref",
           "datasets": [{"name": "knights_knaves",
                         "params": {"n_train": 12, "n_valid": 4, "n_test": 4, "eval_samples": 0,
                                    "max_new_tokens": 32}}],
           "methods": [{"name": "trpa_old_ref", "params": base}, {"name": "trpa", "params": base}],
           "seeds": [0], "metrics": ["accuracy"], "valid_metric": "accuracy"}
    reg = Registry()
    suite, cells = validate_suite(raw, reg)
    uri = f"sqlite:///{tmp_path}/m.db"
    results = run_suite(suite, cells, reg, tracking_uri=uri, cache_dir=tmp_path)
    assert [r.status for r in results] == ["finished", "finished"], [r.error for r in results]
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("trpa-ref").experiment_id

    def pair_losses(method):
        run = client.search_runs([exp], filter_string=f"tags.`bench.method` = '{method}'")[0]
        return [p.value for p in sorted(client.get_metric_history(run.info.run_id, "pair_loss"),
                                        key=lambda p: p.step)]

    old, fixed = pair_losses("trpa_old_ref"), pair_losses("trpa")
    assert len(old) == 3 and all(abs(v - math.log(2)) < 1e-6 for v in old)
    assert abs(fixed[0] - math.log(2)) < 1e-6  # step 0: the policy is still the initial model
    assert any(abs(v - math.log(2)) > 1e-4 for v in fixed[1:])
