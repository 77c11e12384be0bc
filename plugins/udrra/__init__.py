"""UDRRA (Su et al., arXiv 2502.03095): DPO and RL losses as approximations of one target.

Method ``udrra`` with ``preset`` in: bda_exact, bda, ra, ra_learned_z, rda, pra (= DPO),
ipo, pra_online (PRA-P, fixed reference), pra_posterior (online pairs, reference reset to
π_old every ``ref_update_every`` steps), trpa_style (online groups of ``group_size``,
rewards quantised into ``levels``, pairs across levels, anisotropic τ as in TRPA).
``data`` overrides where samples come from (offline from π_ref, offline from a
poor-coverage policy, or online from π_θ).

The policy is a tiny decoder from :mod:`harness.llm` warm-started on samples of the
task's base distribution (that fit is π_ref). Its distribution over the enumerable
response set is restricted to response tokens, so it is exactly normalised and every
metric is an exact sum; samples are drawn from those exact probabilities (identical in
law to autoregressive sampling of the restricted policy, and much cheaper).
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch
import torch.nn as nn
from pydantic import Field

from harness.api import BenchError, MethodSpec, Params, Rate
from harness.hookspecs import hookimpl
from harness.llm import LLMConfig, load_llm
from harness.tasks.levels import level_pairs
from harness.tasks.preference import PreferenceData, exact_target, preference_metrics

from . import losses

PRESETS = {  # preset -> (loss, default data regime, reference)
    "bda_exact": ("bda_exact", "online", "fixed"),
    "bda": ("bda", "online", "fixed"),
    "ra": ("ra", "offline_ref", "fixed"),
    "ra_learned_z": ("ra_learned_z", "offline_ref", "fixed"),
    "rda": ("rda", "offline_ref", "fixed"),
    "pra": ("pra", "offline_ref", "fixed"),
    "ipo": ("ipo", "offline_ref", "fixed"),
    "pra_online": ("pra", "online", "fixed"),
    "pra_posterior": ("pra", "online", "old"),
    "trpa_style": ("trpa_style", "online", "fixed"),
}


class UDRRAParams(Params):
    preset: Literal[tuple(PRESETS)] = "pra"
    tau: float = Field(0.1, gt=0)
    data: Optional[Literal["offline_ref", "offline_bad", "online"]] = None
    reference: Optional[Literal["fixed", "old"]] = None
    ref_update_every: int = Field(25, ge=1)
    soft_labels: bool = False
    steps: int = Field(300, ge=1)
    batch: int = Field(64, ge=2, description="pairs per step (single-sample losses draw 2x)")
    lr: Rate = 1e-3
    eval_every: int = Field(10, ge=1)
    kl_threshold: float = Field(0.05, gt=0)
    levels: int = Field(4, ge=2, description="trpa_style: reward levels (equal-width bins)")
    group_size: int = Field(8, ge=2, description="trpa_style: samples per prompt per step")
    anisotropy: float = Field(2.5, gt=0, description="trpa_style: τ multiplier, level-1 winner")
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(
        layers=2, dim=64, heads=4, ffn_mult=2, max_positions=16, sft_steps=400, sft_lr=3e-3,
        sft_batch_size=64))


class EnumerablePolicy(nn.Module):
    """A causal LM seen as a distribution over the task's enumerable responses."""

    def __init__(self, model, tokenizer, data: PreferenceData, tau: float) -> None:
        super().__init__()
        self.model = model
        self.tau = tau
        vocab = tokenizer.convert_tokens_to_ids([f"r{v}" for v in range(data.vocab)])
        prompts = tokenizer.convert_tokens_to_ids([data.prompt_text(x) for x in range(data.n_prompts)])
        if tokenizer.unk_token_id in vocab + prompts:
            raise BenchError("udrra: the tokenizer does not know the task's tokens (a local "
                             "checkpoint must have been trained on this task's corpus).")
        self.register_buffer("resp_tok", torch.tensor(vocab))
        self.register_buffer("prompt_tok", torch.tensor(prompts))
        self.register_buffer("responses", data.responses.clone())
        self.ref_logp: torch.Tensor | None = None
        self.history: dict = {}

    def logprobs(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """log π(y|x) for index tensors xs [B], ys [B] (response indices)."""
        toks = self.resp_tok[self.responses[ys]]                    # [B, L]
        ids = torch.cat([self.prompt_tok[xs].unsqueeze(1), toks], 1)  # [B, 1+L]
        logits = self.model(input_ids=ids).logits[:, :-1, :]
        logits = logits[..., self.resp_tok]                          # restrict to response vocab
        lp = torch.log_softmax(logits.float(), -1)
        return lp.gather(-1, self.responses[ys].unsqueeze(-1)).squeeze(-1).sum(-1)

    def enumerate_logprobs(self, data: PreferenceData | None = None) -> torch.Tensor:
        """[K, |Y|] log-probabilities of every response of every prompt."""
        K, Y = len(self.prompt_tok), len(self.responses)
        xs = torch.arange(K).repeat_interleave(Y)
        ys = torch.arange(Y).repeat(K)
        return self.logprobs(xs, ys).view(K, Y)


def _sample(probs: torch.Tensor, xs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.multinomial(probs[xs], 1, generator=g).squeeze(1)


def train_udrra(p: UDRRAParams, data: PreferenceData, ctx) -> EnumerablePolicy:
    loss_name, default_data, default_ref = PRESETS[p.preset]
    regime, reference = p.data or default_data, p.reference or default_ref
    prompts, responses = data.sft_pairs(seed=p.llm.seed)
    llm = load_llm(p.llm, data.corpus(), prompts, responses, cache_dir=ctx.cache_dir, device="cpu")
    # the LLM may come from the cache or be trained now: start the cell's own draws afresh
    ctx = ctx.child(seed=ctx.seed)
    pol = EnumerablePolicy(llm.model, llm.tokenizer, data, p.tau)
    with torch.no_grad():
        pol.ref_logp = pol.enumerate_logprobs().detach()
    target = exact_target(pol.ref_logp, data.rewards, p.tau)
    tau_log_z = p.tau * torch.logsumexp(pol.ref_logp + data.rewards / p.tau, -1)  # exact
    learned_z = nn.Parameter(torch.zeros(data.n_prompts))
    params = list(pol.model.parameters()) + ([learned_z] if loss_name == "ra_learned_z" else [])
    opt = torch.optim.Adam(params, lr=p.lr)
    g = ctx.rng("udrra.data")
    loss_ref = pol.ref_logp.clone()  # the reference inside the loss (π_old for -P variants)
    bad = data.bad_probs.log()
    K = data.n_prompts
    n_groups = max(1, 2 * p.batch // p.group_size)  # trpa_style: ~2·batch samples in groups
    per_step = {"bda_exact": K * len(data.responses),
                "trpa_style": n_groups * p.group_size}.get(loss_name, 2 * p.batch)
    steps_to_kl = math.nan
    for step in range(p.steps + 1):
        if step % p.eval_every == 0 or step == p.steps:
            with torch.no_grad():
                logp = pol.enumerate_logprobs()
                means, _ = preference_metrics(logp, pol.ref_logp, data.rewards, p.tau)
            ctx.log_metrics({f"curve_{k}": v for k, v in means.items()} |
                            {"curve_queries": step * per_step}, step)
            for k in ("kl_target", "expected_reward"):
                pol.history.setdefault(f"curve_{k}", []).append((step, means[k]))
            if math.isnan(steps_to_kl) and means["kl_target"] < p.kl_threshold:
                steps_to_kl = step
        if step == p.steps:
            break
        if reference == "old" and step and step % p.ref_update_every == 0:
            with torch.no_grad():
                loss_ref = pol.enumerate_logprobs().detach()
        if loss_name == "bda_exact":
            loss = losses.bda_exact_loss(pol.enumerate_logprobs(), target)
        else:
            with torch.no_grad():
                src = {"offline_ref": pol.ref_logp, "offline_bad": bad}.get(regime)
                src = pol.enumerate_logprobs() if src is None else src
            if loss_name == "trpa_style":
                xs = torch.randint(K, (n_groups,), generator=g).repeat_interleave(p.group_size)
            else:
                n = 2 * p.batch if loss_name in ("bda", "ra", "ra_learned_z") else p.batch
                xs = torch.randint(K, (n,), generator=g)
            y1 = _sample(src.exp(), xs, g)
            lp1 = pol.logprobs(xs, y1)
            rho1, r1 = lp1 - loss_ref[xs, y1], data.rewards[xs, y1]
            if loss_name == "bda":
                loss = losses.bda_reinforce_loss(lp1, rho1, r1, p.tau, xs)
            elif loss_name == "ra":
                loss = losses.ra_loss(rho1, r1, p.tau, tau_log_z[xs])
            elif loss_name == "ra_learned_z":
                loss = losses.ra_loss(rho1, r1, p.tau, learned_z[xs])
            elif loss_name == "trpa_style":
                levels = losses.reward_levels(r1, p.levels)
                groups = torch.arange(len(xs)) // p.group_size
                pairs = level_pairs(levels.tolist(), groups.tolist())
                loss = losses.leveled_pra_loss(rho1, levels, pairs, p.tau, p.anisotropy)
            else:
                y2 = _sample(src.exp(), xs, g)
                rho2, r2 = pol.logprobs(xs, y2) - loss_ref[xs, y2], data.rewards[xs, y2]
                if loss_name == "rda":
                    loss = losses.rda_loss(rho1, rho2, r1, r2, p.tau)
                else:  # Bradley-Terry labels on the reward scale: P(y1 > y2) = σ(r1 − r2)
                    p12 = torch.sigmoid(r1 - r2)
                    if p.soft_labels:
                        loss = losses.pra_loss(rho1, rho2, p.tau, weight=p12) if loss_name == "pra" \
                            else losses.ipo_loss(rho1, rho2, p.tau)
                    else:
                        first = torch.rand(len(xs), generator=g) < p12
                        rw, rl = torch.where(first, rho1, rho2), torch.where(first, rho2, rho1)
                        loss = losses.pra_loss(rw, rl, p.tau) if loss_name == "pra" \
                            else losses.ipo_loss(rw, rl, p.tau)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % p.eval_every == 0:
            ctx.log_metrics({"train_loss": float(loss.detach())}, step)
    if math.isnan(steps_to_kl):  # censored: not reached within the budget
        steps_to_kl = p.steps + 1
    pol.history.update({"steps_to_kl": steps_to_kl,
                        "queries_to_kl": steps_to_kl * per_step,
                        "queries_per_step": per_step})
    pol.eval()
    return pol


@hookimpl
def bench_register_methods():
    return [MethodSpec("udrra", ("preference",),
                       "UDRRA unified DPO/RL losses (BDA, RA, RDA, PRA=DPO, IPO, online/posterior "
                       "variants, TRPA-style levels) on an enumerable preference task",
                       params=UDRRAParams, version="2")]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "udrra":
        return None
    if not isinstance(dataset, PreferenceData):
        raise BenchError("udrra needs the enumerable 'preference_synth' dataset (exact targets).")
    return train_udrra(UDRRAParams(**params), dataset, ctx)
