"""The reasoning scorer's per-problem values (what the leaderboard's paired tests use)."""
import torch

from harness.llm import LLMConfig, Policy, load_llm
from harness.tasks.reasoning import make_reasoning
from plugins.align_tasks.scoring import score_reasoning

torch.set_num_threads(1)


def test_per_problem_values_average_to_the_reported_metrics(tmp_path):
    data = make_reasoning("arithmetic", 16, 2, 10, [1, 2], seed=0)
    prompts, responses = data.sft_pairs(seed=0)
    llm = load_llm(LLMConfig(layers=1, dim=32, heads=2, ffn_mult=2, max_positions=96,
                             sft_steps=30, sft_batch_size=8), data.corpus(), prompts, responses,
                   cache_dir=tmp_path, device="cpu")
    torch.manual_seed(0)
    res = score_reasoning(Policy.from_llm(llm), data, "test", samples=3, max_new_tokens=24,
                          device="cpu", batch_size=4)  # batches split problems unevenly
    for name in ("accuracy", "mean_reward", "format_valid", "accuracy_sampled",
                 "mean_reward_sampled", "kl_init"):
        per = res.per_user[name]
        assert sorted(per, key=int) == [str(i) for i in range(10)], name
        assert abs(sum(per.values()) / 10 - res.metrics[name]) < 1e-9, name
    assert all(v in (0.0, 1 / 3, 2 / 3, 1.0) or abs(v * 3 - round(v * 3)) < 1e-9
               for v in res.per_user["accuracy_sampled"].values())
    # the greedy responses come back as samples for the cell's bounded samples.jsonl
    samples = res.extra["samples"]
    assert len(samples) == 10 and {"prompt", "response", "correct", "reward"} <= set(samples[0])
    assert sum(s["correct"] for s in samples) / 10 == res.metrics["accuracy"]
