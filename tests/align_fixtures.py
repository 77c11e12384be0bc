"""The smallest arithmetic suite of online alignment arms, run to its end: shared by the
tests of equal updates per rollout batch and of early stopping."""
from __future__ import annotations

from pathlib import Path

from harness.registry import Registry
from harness.runner import run_suite
from harness.suite import validate_suite

#: a one-layer policy with a 10-step SFT start: enough to generate, cheap on one core
LLM = {"layers": 1, "dim": 32, "heads": 2, "ffn_mult": 2, "max_positions": 160,
       "sft_steps": 10, "sft_batch_size": 16}
ONLINE = ("trpa", "trl_grpo", "trl_online_dpo")
BASE = {"prompts_per_step": 2, "samples_per_prompt": 4, "max_new_tokens": 16, "llm": LLM}


def run_arithmetic_arms(tmp_path: Path, methods, params: dict, name: str,
                        valid_metric: str = "accuracy") -> dict[str, dict]:
    """Run ``methods`` (each with ``BASE`` + ``params``) on a 16-problem arithmetic set, one
    seed; every cell must finish. Returns each method's metrics."""
    raw = {"suite": name,
           "datasets": [{"name": "arithmetic",
                         "params": {"n_train": 16, "n_valid": 2, "n_test": 2, "eval_samples": 1,
                                    "max_new_tokens": 16}}],
           "methods": [{"name": m, "params": {**BASE, **params}} for m in methods],
           "seeds": [0], "metrics": ["accuracy"], "valid_metric": valid_metric}
    reg = Registry()
    suite, cells = validate_suite(raw, reg)
    results = run_suite(suite, cells, reg, tracking_uri=f"sqlite:///{tmp_path}/m.db",
                        cache_dir=tmp_path)
    assert [r.status for r in results] == ["finished"] * len(methods), [r.error for r in results]
    return {r.cell.method.name: r.metrics for r in results}
