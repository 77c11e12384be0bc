"""Generated non-ranking tasks as datasets: Knights-and-Knaves and column arithmetic
(``reasoning``) and an enumerable synthetic preference task (``preference``), with their
metrics and scorers. Generators and graders live in :mod:`harness.tasks` so every LLM
plugin can import them; this plugin only exposes them to suites."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.api import (DatasetSpec, MetricSpec, NonNegativeFloat, Params, Seed,
                         parse_dataset_params)
from harness.hookspecs import hookimpl

REASONING = ("reasoning",)
PREFERENCE = ("preference",)


class ReasoningParams(Params):
    n_train: int = Field(400, ge=1)
    n_valid: int = Field(60, ge=1)
    n_test: int = Field(200, ge=1)
    difficulties: list[int] = Field(default_factory=lambda: [2, 3], min_length=1)
    depth: int = Field(2, ge=1, le=2)
    scratchpad: Literal["roles", "cases"] = Field(
        "roles", description="K&K solution format: 'roles' (the assignment, solved in the "
                             "head) or 'cases' (assignments checked in order, statement truth "
                             "values per case, up to the consistent one)")
    seed: Seed = 0
    eval_samples: int = Field(4, ge=0, description="samples per test problem at T=1")
    max_new_tokens: int = Field(48, ge=4)


class PreferenceParams(Params):
    n_prompts: int = Field(8, ge=1)
    length: int = Field(3, ge=1)
    vocab: int = Field(6, ge=2)
    bonus: NonNegativeFloat = 1.0
    skew: NonNegativeFloat = 3.0
    ref_samples: int = Field(4000, ge=10)
    seed: Seed = 0


@hookimpl
def bench_register_datasets():
    return [
        DatasetSpec("knights_knaves", REASONING,
                    "procedural Knights-and-Knaves puzzles with a unique solution (difficulty = "
                    "people); TRPA's four rule-reward levels", default_task="reasoning",
                    params=ReasoningParams),
        DatasetSpec("arithmetic", REASONING,
                    "2-3 digit addition/subtraction with a column scratchpad (difficulty = digits); "
                    "same four levels", default_task="reasoning", params=ReasoningParams),
        DatasetSpec("preference_synth", PREFERENCE,
                    "K prompts x V**L enumerable responses with a known reward: exact target "
                    "pi_ref*exp(r/tau)/Z and exact KLs", default_task="preference",
                    params=PreferenceParams),
    ]


@hookimpl
def bench_load_dataset(name: str, params: dict):
    if name in ("knights_knaves", "arithmetic"):
        from harness.tasks.reasoning import make_reasoning

        p = parse_dataset_params(ReasoningParams, params, name)
        data = make_reasoning(name, p.n_train, p.n_valid, p.n_test, p.difficulties, p.seed,
                              p.depth, scratchpad=p.scratchpad)
        data.extra["eval"] = {"samples": p.eval_samples, "max_new_tokens": p.max_new_tokens}
        data.protocol["eval"] = data.extra["eval"]
        return data
    if name == "preference_synth":
        from harness.tasks.preference import make_preference

        return make_preference(
            **parse_dataset_params(PreferenceParams, params, name).model_dump())
    return None


@hookimpl
def bench_register_metrics():
    r = [("accuracy", True, "greedy accuracy (rule check)"),
         ("accuracy_sampled", True, "accuracy of samples at T=1"),
         ("format_valid", True, "share of greedy responses with valid tags"),
         ("mean_reward", True, "mean rule reward, greedy"),
         ("mean_reward_sampled", True, "mean rule reward, samples at T=1"),
         ("kl_init", False, "Monte-Carlo KL(policy || initial SFT policy) per response"),
         ("reward_gap", False, "normalised reward minus accuracy (reward-hacking check)"),
         ("valid_drawdown", False, "largest fall of the validation curve below its running "
                                   "best during training (stability; logged by the method)")]
    p = [("kl_target", False, "exact KL(pi || pi_ref exp(r/tau)/Z)"),
         ("kl_target_rev", False, "exact KL(target || pi)"),
         ("tv_target", False, "exact total variation to the target"),
         ("expected_reward", True, "exact E_pi[r]"),
         ("kl_ref", False, "exact KL(pi || pi_ref)"),
         ("steps_to_kl", False, "optimizer steps until KL(pi||target) < threshold "
                                 "(steps + 1: not reached)"),
         ("queries_to_kl", False, "reward/preference queries until KL(pi||target) < threshold "
                                  "(censored like steps_to_kl)"),
         ("steps_run", False, "optimizer steps until the run stopped (KL threshold reached, "
                              "KL plateau, or the step budget)"),
         ("seconds_run", False, "seconds of optimizer steps until the run stopped "
                                "(wall clock, evaluations excluded; load-dependent)"),
         ("cpu_seconds_run", False, "CPU seconds of optimizer steps until the run stopped "
                                    "(process time, evaluations excluded)"),
         ("kl_area", False, "mean exact KL(pi||target) over the evaluation grid of the whole "
                            "step budget, a stopped run held at its last value (low = gets "
                            "low and fast; the lr selection criterion)")]
    return ([MetricSpec(n, REASONING, ranx=False, needs_cutoff=False, higher_is_better=h,
                        description=d) for n, h, d in r]
            + [MetricSpec(n, PREFERENCE, ranx=False, needs_cutoff=False, higher_is_better=h,
                          description=d) for n, h, d in p])


#: reasoning metrics computed from samples at T = 1 (the rest are greedy)
SAMPLED_METRICS = {"accuracy_sampled", "mean_reward_sampled", "kl_init", "reward_gap"}


@hookimpl
def bench_score(model, dataset, part, metrics, ctx):
    task = getattr(dataset, "task", None)
    if task == "reasoning" and hasattr(model, "init_model"):
        from .scoring import score_reasoning

        ev = dataset.extra.get("eval", {})
        # validation is greedy only, unless a sampled metric is asked for (a method's
        # validation curve or a tuner selecting on sampled accuracy)
        sampled = part == "test" or bool(set(metrics or ()) & SAMPLED_METRICS)
        samples = ev.get("samples", 4) if sampled else 0
        return score_reasoning(model, dataset, part, samples, ev.get("max_new_tokens", 48),
                               ctx.device if ctx is not None else "cpu")
    if task == "preference" and hasattr(model, "enumerate_logprobs"):
        from .scoring import score_preference

        return score_preference(model, dataset, part)
    return None
