"""TRPA (Trust Region Preference Approximation, arXiv 2504.04524) and its trl baselines.

Flow for every method here: ``bench_train`` warm-starts the shared SFT policy through
:mod:`harness.llm` (cached by content hash, so every method and seed of a suite starts
from the same weights), wraps it in a :class:`harness.llm.Policy` (current model + frozen
initial model + tokenizer) and hands it to :func:`align`, which runs TRPA's own loop or a
trl trainer and returns the aligned policy (a :class:`harness.api.PolicyModel`), which
the ``align_tasks`` plugin scores on the reasoning task.

Methods: ``trpa`` and its ablations ``trpa_no_ktpo`` (a = 1), ``trpa_best_worst``
(pairs only between the best and worst level present), ``trpa_no_tr`` (no trust-region
term), ``trpa_old_ref`` (log-ratio against π_old, not the initial model);
``trl_grpo``, ``trl_online_dpo``, ``trl_dpo`` (offline pairs from the initial policy);
``sft_init`` (the starting policy, no alignment).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.api import (BenchError, MethodSpec, Params, Rate, budget_history,
                         optimizer_steps_not_counted)
from harness.hookspecs import hookimpl
from harness.llm import LLMConfig, Policy, load_llm

from .budget import RolloutCounter


class AlignParams(Params):
    """Budget and warm start shared by TRPA and the baselines (same samples per step)."""

    steps: int = Field(60, ge=0)
    prompts_per_step: int = Field(8, ge=1)
    samples_per_prompt: int = Field(8, ge=2)
    max_new_tokens: int = Field(48, ge=4)
    temperature: float = Field(1.0, gt=0)
    lr: Rate = 1e-4
    updates_per_batch: int = Field(
        2, ge=1, description="μ: optimiser steps per rollout batch, the same for every online "
                             "method (TRPA's inner steps, trl GRPO's num_iterations, Online DPO's "
                             "replays); μ > 1 makes TRPA's trust region act")
    eval_every: int = Field(20, ge=0, description="validation accuracy every k rollout batches "
                                                  "(0: off)")
    patience: int = Field(2, ge=1, description="an arm whose best validation lies in the last "
                                               "`patience` evaluations is flagged still improving; "
                                               "with early_stop, evaluations without a new best "
                                               "before training stops")
    early_stop: bool = Field(
        False, description="stop after `patience` validation evaluations without a new best "
                           "and test the best-on-validation weights (the harness's early "
                           "stopping, as every recsys arm gets); off: the last policy after "
                           "`steps` rollout batches")
    sft_mix: list[float] = Field(default_factory=lambda: [0.55, 0.25, 0.10, 0.10],
                                 min_length=4, max_length=4)
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(
        layers=2, dim=64, heads=4, ffn_mult=4, max_positions=192, sft_steps=300, sft_lr=3e-3,
        sft_batch_size=32))


class TRPAParams(AlignParams):
    beta: float = Field(0.1, gt=0)
    anisotropy: float = Field(2.5, gt=0, description="β multiplier when the winner is level 1")
    pairing: Literal["all", "best_worst"] = "all"
    tr_coef: float = Field(1e-3, ge=0)
    sqrt_tr: bool = False
    grad_clip: float = Field(1.0, gt=0)
    reference: Literal["initial", "old"] = Field(
        "initial", description="log-ratio reference: the frozen initial model (official code) "
                               "or π_old, the rollout policy (the paper's posterior framing)")


class NoKTPOParams(TRPAParams):
    anisotropy: float = Field(1.0, gt=0)


class BestWorstParams(TRPAParams):
    pairing: Literal["all", "best_worst"] = "best_worst"


class NoTRParams(TRPAParams):
    tr_coef: float = Field(0.0, ge=0)


class OldRefParams(TRPAParams):
    reference: Literal["initial", "old"] = "old"


class GRPOParams(AlignParams):
    grpo_beta: float = Field(0.001, ge=0)


class DPOParams(AlignParams):
    dpo_beta: float = Field(0.1, gt=0)


METHODS: dict[str, tuple[type[Params], str]] = {
    "trpa": (TRPAParams, "TRPA: level pairs, per-token mean log-ratio vs the initial model, "
                         "anisotropic β, trust region vs π_old"),
    "trpa_no_ktpo": (NoKTPOParams, "TRPA ablation: no level-dependent β (a = 1)"),
    "trpa_best_worst": (BestWorstParams, "TRPA ablation: pairs only between best and worst level"),
    "trpa_no_tr": (NoTRParams, "TRPA ablation: no trust-region term"),
    "trpa_old_ref": (OldRefParams, "TRPA ablation: log-ratio against π_old instead of the "
                                   "fixed initial model"),
    "trl_grpo": (GRPOParams, "GRPO via trl.GRPOTrainer (loss grpo, β 0.001, ε 0.2)"),
    "trl_online_dpo": (DPOParams, "Online DPO via trl.experimental.online_dpo (sigmoid, β 0.1)"),
    "trl_dpo": (DPOParams, "offline DPO via trl.DPOTrainer on pairs from the initial policy"),
    "sft_init": (AlignParams, "the shared SFT-initialised policy, no alignment"),
}


def warm_start(p: AlignParams, data, ctx) -> Policy:
    """The SFT policy all methods start from (cached under .bench_cache/llm/<hash>)."""
    prompts, responses = data.sft_pairs(p.sft_mix, seed=p.llm.seed)
    # shared by every arm and cached: its SFT steps are no arm's alignment budget
    with optimizer_steps_not_counted():
        llm = load_llm(p.llm, data.corpus(), prompts, responses, cache_dir=ctx.cache_dir,
                       device=ctx.device)
    return Policy.from_llm(llm)


@hookimpl
def bench_register_methods():
    return [MethodSpec(name, ("reasoning",), desc, params=cls, version="1")
            for name, (cls, desc) in METHODS.items()]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method not in METHODS:
        return None
    if not hasattr(dataset, "grade"):
        raise BenchError(f"{method} needs a reasoning dataset (knights_knaves or arithmetic).")
    p = METHODS[method][0](**params)
    policy = warm_start(p, dataset, ctx)
    if method == "sft_init":
        return policy
    return align(method, params, policy, dataset, ctx)


def align(method: str, params: dict, policy: Policy, dataset, ctx) -> Policy:
    """Align the warm-started ``policy`` with ``method`` (TRPA's loop or a trl trainer).

    The warm start may come from the cache or be trained now, so the cell's own draws
    start afresh from its seed here."""
    ctx = ctx.child(seed=ctx.seed)
    p = METHODS[method][0](**params)
    if method.startswith("trpa"):
        from .loop import train_trpa as run
    else:
        from . import trl_baselines

        run = {"trl_grpo": trl_baselines.train_grpo,
               "trl_online_dpo": trl_baselines.train_online_dpo,
               "trl_dpo": trl_baselines.train_offline_dpo}[method]
    with RolloutCounter(policy.model) as rollouts:
        policy = run(policy, dataset, p, ctx)
    # scalars in the history become the cell's metrics (next to the runner's optimizer_steps)
    policy.history["rollout_batches"] = rollouts.count
    if method != "trl_dpo":  # offline DPO has no rollout batches to update on
        policy.history["updates_per_batch"] = p.updates_per_batch
    policy.history.update(under_training_flag(policy.history.get("valid_" + ctx.valid_metric),
                                              p.steps, p.eval_every, p.patience,
                                              batches_run=rollouts.count if p.early_stop else None))
    return policy


#: validation evaluations at the end of the budget in which a new best means "still improving"
VALID_PATIENCE = 2


def under_training_flag(curve, steps: int, eval_every: int,
                        patience: int = VALID_PATIENCE,
                        batches_run: int | None = None) -> dict[str, float]:
    """The harness's budget fields from a validation curve [(rollout batches done, value)]:
    ``still_improving`` when the first best value came in the last ``patience``
    evaluations of the budget, so a board and its claims can tell a plateaued arm from one
    the budget cut short; the best, run (``batches_run``, when early stopping ended the run
    before ``steps``) and budgeted rollout batches (the board's epochs column) and the
    curve's largest drawdown (stability). Without ``early_stop`` the returned policy is the
    last one; with it, the best on validation. Empty without a curve (``eval_every: 0``)."""
    if not curve or not eval_every:
        return {}
    best_done = max(curve, key=lambda sv: (sv[1], -sv[0]))[0]
    run = steps if batches_run is None else batches_run
    # after k rollout batches the last one done is batch k - 1 (0-based, like an epoch)
    return {"best_epoch": float(best_done - 1), "epochs_run": float(run),
            "valid_drawdown": max_drawdown([v for _, v in sorted(curve)]),
            **budget_history(best_done - 1, steps, patience, eval_every)}


def max_drawdown(values: list[float]) -> float:
    """Largest fall below the running best (0 for a curve that never falls): the
    stability figure of the spec (a method that gains and then loses it scores badly)."""
    best, worst = float("-inf"), 0.0
    for v in values:
        best = max(best, v)
        worst = max(worst, best - v)
    return worst
