"""TRPA's training loop: sample a group per prompt, grade onto levels, μ inner steps.

A custom loop rather than a GRPOTrainer subclass (spec §1.5): GRPO's advantages lose
the absolute level the a·β rule needs, and it splits prompt groups across steps.
"""
from __future__ import annotations

import torch

from harness.api import BestOnValidation
from harness.llm import Policy, response_logprobs, sample_responses
from harness.tasks.levels import level_pairs

from .budget import not_a_rollout
from .loss import trpa_loss


def rollout(policy: Policy, data, problems, n: int, max_new_tokens: int, temperature: float,
            device) -> tuple:
    """Sample ``n`` responses per problem and grade them: (samples, grades)."""
    s = sample_responses(policy.model, policy.tokenizer, [p.prompt for p in problems], n,
                         max_new_tokens, temperature, device)
    grades = [data.grade(problems[i], t) for i, t in zip(s.prompt_index, s.texts)]
    return s, grades


def log_rollout_stats(ctx, policy: Policy, step: int, grades, extra: dict) -> None:
    n = len(grades)
    stats = {f"train_level_{lv}": sum(g.level == lv for g in grades) / n for lv in (1, 2, 3, 4)}
    stats["train_reward"] = sum(g.reward for g in grades) / n
    stats.update({k: v for k, v in extra.items() if v == v})  # drop NaN
    ctx.log_metrics(stats, step)
    for k in ("train_level_1", "train_reward", "h_high", "h_low"):
        if k in stats:
            policy.log(k, step, stats[k])


#: figures a sampled validation pass computes anyway, logged beside the validation metric
#: as curves: the KL to the start at every evaluation, so arms that early stopping ended at
#: different lengths can be compared at equal rollout batches
VALID_CURVES = ("kl_init",)


def validate_every(ctx, policy: Policy, data, step: int, every: int, last: bool) -> float | None:
    """The suite's validation metric on the validation problems (never test) after ``step``
    rollout batches, as a convergence curve (with :data:`VALID_CURVES` when the pass
    computed them); None when no evaluation is due."""
    if not every or not (step % every == 0 or last):
        return None
    policy.model.eval()
    with not_a_rollout(policy.model):
        scores = ctx.score(policy, data, "valid", [ctx.valid_metric]).metrics
    value = scores[ctx.valid_metric]
    ctx.report("valid_" + ctx.valid_metric, value, step)
    policy.log("valid_" + ctx.valid_metric, step, value)
    for name in VALID_CURVES:
        if name in scores and name != ctx.valid_metric:
            ctx.log_metrics({"valid_" + name: scores[name]}, step)
            policy.log("valid_" + name, step, scores[name])
    return value


def stopper(p) -> BestOnValidation | None:
    """Early stopping on validation for an online arm (``early_stop``), else None."""
    return BestOnValidation(p.patience) if p.early_stop and p.eval_every else None


def train_trpa(policy: Policy, data, p, ctx) -> Policy:
    """``p.steps`` rollout batches, ``p.updates_per_batch`` (μ) AdamW steps on each."""
    device = ctx.device
    model = policy.model.to(device)
    policy.init_model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.999), weight_decay=0.01)
    g = ctx.rng("trpa.prompts")
    best = stopper(p)
    for step in range(p.steps):
        value = validate_every(ctx, policy, data, step, p.eval_every, False)
        if best is not None and value is not None and best.update(value, step, model):
            break
        idx = torch.randint(len(data.train), (p.prompts_per_step,), generator=g).tolist()
        problems = [data.train[i] for i in idx]
        s, grades = rollout(policy, data, problems, p.samples_per_prompt, p.max_new_tokens,
                            p.temperature, device)
        levels = [gr.level for gr in grades]
        pairs = level_pairs(levels, s.prompt_index, p.pairing)
        ids, att = s.input_ids.to(device), s.attention_mask.to(device)
        mask = s.response_mask.to(device)
        with torch.no_grad():
            old_lp = response_logprobs(model, ids, att)
            ref_lp = old_lp if p.reference == "old" else response_logprobs(policy.init_model, ids, att)
        model.train()
        stats = {}
        for _ in range(p.updates_per_batch):
            lp = response_logprobs(model, ids, att)
            loss, stats = trpa_loss(lp, ref_lp, old_lp, mask, levels, pairs, p.beta,
                                    p.anisotropy, p.tr_coef, p.sqrt_tr)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
            opt.step()
        model.eval()
        log_rollout_stats(ctx, policy, step, grades, {**stats, "train_loss": float(loss.detach())})
    else:  # the whole budget ran: one last evaluation
        value = validate_every(ctx, policy, data, p.steps, p.eval_every, True)
        if best is not None and value is not None:
            best.update(value, p.steps, model)
    if best is not None:
        best.restore(model)
    model.eval()
    return policy
