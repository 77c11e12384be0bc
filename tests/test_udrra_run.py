"""A generated task through the runner: TaskData split id, exact metrics, MLflow, resume."""
import math

import pytest
import torch

from harness.api import TaskData
from harness.registry import Registry
from harness.runner import prepare_dataset, run_suite
from harness.suite import SuiteError, validate_suite

torch.set_num_threads(1)
LLM = {"layers": 1, "dim": 32, "heads": 2, "ffn_mult": 2, "max_positions": 8, "sft_steps": 40,
       "sft_batch_size": 32}


def _suite(methods, steps=8):
    return {"suite": "pref-test",
            "datasets": [{"name": "preference_synth",
                          "params": {"n_prompts": 3, "length": 2, "vocab": 4, "ref_samples": 300}}],
            "methods": [{"name": "udrra", "label": m, "params": {"preset": m, "steps": steps,
                                                                 "eval_every": 4, "lr": 3e-3,
                                                                 "llm": dict(LLM)}} for m in methods],
            "seeds": [0], "metrics": ["kl_target", "expected_reward", "kl_ref"],
            "valid_metric": "kl_target"}


def test_validate_rejects_bad_udrra_params():
    reg = Registry()
    bad = _suite(["pra"])
    bad["methods"][0]["params"]["preset"] = "dpoo"
    with pytest.raises(SuiteError, match="preset"):
        validate_suite(bad, reg)
    bad = _suite(["pra"])
    bad["methods"][0]["params"]["llm"]["layerz"] = 2
    with pytest.raises(SuiteError, match="layerz"):
        validate_suite(bad, reg)


def test_presets_run_through_the_runner_and_reduce_kl(tmp_path):
    reg = Registry()
    suite, cells = validate_suite(_suite(["bda_exact", "rda", "pra", "trpa_style"], steps=30), reg)
    ds = prepare_dataset(cells[0].dataset, cells[0].task, reg, tmp_path)
    assert isinstance(ds, TaskData) and len(ds.split_id) == 12
    assert prepare_dataset(cells[0].dataset, cells[0].task, reg, tmp_path).split_id == ds.split_id
    results = run_suite(suite, cells, reg, tracking_uri=f"sqlite:///{tmp_path}/m.db",
                        cache_dir=tmp_path)
    assert [r.status for r in results] == ["finished"] * 4, [r.error for r in results]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db")
    run = client.search_runs([client.get_experiment_by_name("pref-test").experiment_id],
                             filter_string="tags.`bench.method` = 'bda_exact'")[0]
    curve = client.get_metric_history(run.info.run_id, "curve_kl_target")
    assert [m.step for m in curve] == [0, 4, 8, 12, 16, 20, 24, 28, 30]
    assert curve[-1].value < curve[0].value  # exact KL to the target decreases
    assert not any(a.path.endswith(".trec") for a in client.list_artifacts(run.info.run_id))
    for r in results:
        assert r.metrics["kl_target"] >= 0 and 0 <= r.metrics["expected_reward"] <= 1
    again = run_suite(suite, cells, reg, tracking_uri=f"sqlite:///{tmp_path}/m.db",
                      cache_dir=tmp_path)
    assert [r.status for r in again] == ["skipped"] * 4  # resume by cell hash
    assert math.isclose(again[0].metrics["kl_target"], results[0].metrics["kl_target"])
