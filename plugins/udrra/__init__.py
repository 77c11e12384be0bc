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
import time
from typing import Literal, Optional

import torch
import torch.nn as nn
from pydantic import Field

from harness.api import BenchError, MethodSpec, Params, Rate
from harness.hookspecs import hookimpl
from harness.llm import LLMConfig, load_llm
from harness.tasks.levels import level_pairs
from harness.tasks.preference import (PreferenceData, exact_target, preference_metrics,
                                      tau_log_partition)

from . import losses
from .convergence import KLConvergence

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
    steps: int = Field(300, ge=1, description="step budget (the same for every arm of a suite)")
    batch: int = Field(64, ge=2, description="pairs per step (single-sample losses draw 2x)")
    lr: Rate = 1e-3
    eval_every: int = Field(10, ge=1)
    kl_threshold: float = Field(0.05, gt=0)
    stop_at_threshold: bool = Field(False, description="stop once KL(π‖π^τ) < kl_threshold")
    patience: Optional[int] = Field(None, ge=1, description=(
        "stop when KL has not improved by more than min_delta (relative) for this many "
        "evaluations (a plateau); None: always run the whole budget"))
    min_delta: float = Field(0.01, ge=0, lt=1)
    z_init: Literal["zero", "warm"] = Field("zero", description=(
        "ra_learned_z: log Z starts at 0, or at its closed form τ·log Σ_y π_ref·exp(r/τ) "
        "(the enumerated partition function), then is learnt"))
    z_lr: Optional[Rate] = Field(None, description=(
        "ra_learned_z: log Z's own Adam learning rate, outside the policy's gradient clip; "
        "None: log Z shares the policy's lr and clip"))
    ref_per_seed: bool = Field(False, description=(
        "fit π_ref with llm.seed + the cell seed, so the seed varies the start and target "
        "of every loss (bda_exact has no other randomness)"))
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

    @torch.no_grad()
    def sample(self, xs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Response indices drawn token by token from the policy restricted to response
        tokens (the same law as sampling from :meth:`enumerate_logprobs`, at L forward
        passes over the batch instead of one over every response of every prompt)."""
        n_vocab, length = len(self.resp_tok), self.responses.shape[1]
        ids = self.prompt_tok[xs].unsqueeze(1)
        index = torch.zeros(len(xs), dtype=torch.long)
        for _ in range(length):
            logits = self.model(input_ids=ids).logits[:, -1, :][:, self.resp_tok].float()
            tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=g).squeeze(1)
            ids = torch.cat([ids, self.resp_tok[tok].unsqueeze(1)], 1)
            index = index * n_vocab + tok  # itertools.product order: first token most significant
        return index

    def enumerate_logprobs(self, data: PreferenceData | None = None) -> torch.Tensor:
        """[K, |Y|] log-probabilities of every response of every prompt."""
        K, Y = len(self.prompt_tok), len(self.responses)
        xs = torch.arange(K).repeat_interleave(Y)
        ys = torch.arange(Y).repeat(K)
        return self.logprobs(xs, ys).view(K, Y)


def _sample(probs: torch.Tensor, xs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.multinomial(probs[xs], 1, generator=g).squeeze(1)


def initial_tau_log_z(mode: str, ref_logp: torch.Tensor, rewards: torch.Tensor,
                      tau: float) -> torch.Tensor:
    """Where a learnt τ·log Z(x) starts: 0 (nothing known), or ``warm``: its closed form
    τ·log Σ_y π_ref(y|x)·exp(r(x,y)/τ) over the enumerated response set (exact here)."""
    if mode == "warm":
        return tau_log_partition(ref_logp, rewards, tau)
    return torch.zeros(ref_logp.shape[0])


class _Batch:
    """Draws one step's samples and turns them into the preset's loss."""

    def __init__(self, p: UDRRAParams, loss_name: str, regime: str, data: PreferenceData,
                 pol: EnumerablePolicy, g: torch.Generator) -> None:
        self.p, self.loss_name, self.regime, self.data, self.pol, self.g = p, loss_name, regime, data, pol, g
        self.bad = data.bad_probs.log()
        self.K = data.n_prompts
        self.n_groups = max(1, 2 * p.batch // p.group_size)  # trpa_style: ~2·batch samples

    @property
    def per_step(self) -> int:
        """Reward or preference queries per step (responses scored)."""
        return {"bda_exact": self.K * len(self.data.responses),
                "trpa_style": self.n_groups * self.p.group_size}.get(self.loss_name, 2 * self.p.batch)

    def loss(self, loss_ref: torch.Tensor, target: torch.Tensor, tau_log_z: torch.Tensor,
             learned_z: torch.Tensor) -> torch.Tensor:
        p, pol, g, data, name = self.p, self.pol, self.g, self.data, self.loss_name
        if name == "bda_exact":
            return losses.bda_exact_loss(pol.enumerate_logprobs(), target)
        src = {"offline_ref": pol.ref_logp, "offline_bad": self.bad}.get(self.regime)
        draw = (lambda xs: pol.sample(xs, g)) if src is None else \
            (lambda xs: _sample(src.exp(), xs, g))  # online: from the current policy
        if name == "trpa_style":
            xs = torch.randint(self.K, (self.n_groups,), generator=g).repeat_interleave(p.group_size)
        else:
            n = 2 * p.batch if name in ("bda", "ra", "ra_learned_z") else p.batch
            xs = torch.randint(self.K, (n,), generator=g)
        y1 = draw(xs)
        lp1 = pol.logprobs(xs, y1)
        rho1, r1 = lp1 - loss_ref[xs, y1], data.rewards[xs, y1]
        if name == "bda":
            return losses.bda_reinforce_loss(lp1, rho1, r1, p.tau, xs)
        if name == "ra":
            return losses.ra_loss(rho1, r1, p.tau, tau_log_z[xs])
        if name == "ra_learned_z":
            return losses.ra_loss(rho1, r1, p.tau, learned_z[xs])
        if name == "trpa_style":
            levels = losses.reward_levels(r1, p.levels)
            groups = torch.arange(len(xs)) // p.group_size
            pairs = level_pairs(levels.tolist(), groups.tolist())
            return losses.leveled_pra_loss(rho1, levels, pairs, p.tau, p.anisotropy)
        y2 = draw(xs)
        rho2, r2 = pol.logprobs(xs, y2) - loss_ref[xs, y2], data.rewards[xs, y2]
        if name == "rda":
            return losses.rda_loss(rho1, rho2, r1, r2, p.tau)
        # Bradley-Terry labels on the reward scale: P(y1 > y2) = σ(r1 − r2)
        p12 = torch.sigmoid(r1 - r2)
        if p.soft_labels:
            return losses.pra_loss(rho1, rho2, p.tau, weight=p12) if name == "pra" \
                else losses.ipo_loss(rho1, rho2, p.tau)
        first = torch.rand(len(xs), generator=g) < p12
        rw, rl = torch.where(first, rho1, rho2), torch.where(first, rho2, rho1)
        return losses.pra_loss(rw, rl, p.tau) if name == "pra" else losses.ipo_loss(rw, rl, p.tau)


def train_udrra(p: UDRRAParams, data: PreferenceData, ctx) -> EnumerablePolicy:
    loss_name, default_data, default_ref = PRESETS[p.preset]
    regime, reference = p.data or default_data, p.reference or default_ref
    llm_cfg = p.llm.model_copy(update={"seed": p.llm.seed + ctx.seed}) if p.ref_per_seed else p.llm
    prompts, responses = data.sft_pairs(seed=llm_cfg.seed)
    llm = load_llm(llm_cfg, data.corpus(), prompts, responses, cache_dir=ctx.cache_dir, device="cpu")
    # the LLM may come from the cache or be trained now: start the cell's own draws afresh
    ctx = ctx.child(seed=ctx.seed)
    pol = EnumerablePolicy(llm.model, llm.tokenizer, data, p.tau)
    with torch.no_grad():
        pol.ref_logp = pol.enumerate_logprobs().detach()
    target = exact_target(pol.ref_logp, data.rewards, p.tau)
    tau_log_z = tau_log_partition(pol.ref_logp, data.rewards, p.tau)  # exact
    learns_z = loss_name == "ra_learned_z"
    learned_z = nn.Parameter(initial_tau_log_z(p.z_init, pol.ref_logp, data.rewards, p.tau).clone())
    pol.tau_log_z_init = learned_z.detach().clone()
    policy_params = list(pol.model.parameters())
    groups = [{"params": policy_params}]
    if learns_z:
        groups.append({"params": [learned_z], **({"lr": p.z_lr} if p.z_lr is not None else {})})
    clipped = policy_params + ([learned_z] if learns_z and p.z_lr is None else [])
    opt = torch.optim.Adam(groups, lr=p.lr)
    batch = _Batch(p, loss_name, regime, data, pol, ctx.rng("udrra.data"))
    loss_ref = pol.ref_logp.clone()  # the reference inside the loss (π_old for -P variants)
    conv = KLConvergence(p.kl_threshold, p.patience, p.min_delta, p.stop_at_threshold)
    steps_run, eval_s, eval_cpu, seconds_to_kl = p.steps, 0.0, 0.0, math.nan
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(p.steps + 1):
        if step % p.eval_every == 0 or step == p.steps:
            te, ce = time.perf_counter(), time.process_time()
            with torch.no_grad():
                logp = pol.enumerate_logprobs()
                means, _ = preference_metrics(logp, pol.ref_logp, data.rewards, p.tau)
            eval_s += time.perf_counter() - te
            eval_cpu += time.process_time() - ce
            extra = {"curve_z_gap": float((learned_z.detach() - tau_log_z).abs().mean())} if learns_z else {}
            ctx.log_metrics({f"curve_{k}": v for k, v in means.items()} | extra |
                            {"curve_queries": step * batch.per_step}, step)
            for k in ("kl_target", "expected_reward"):
                pol.history.setdefault(f"curve_{k}", []).append((step, means[k]))
            stop = conv.update(step, means["kl_target"])
            if conv.reached_at == step:
                seconds_to_kl = time.process_time() - c0 - eval_cpu
            if stop:
                steps_run = step
                break
        if step == p.steps:
            break
        if reference == "old" and step and step % p.ref_update_every == 0:
            with torch.no_grad():
                loss_ref = pol.enumerate_logprobs().detach()
        loss = batch.loss(loss_ref, target, tau_log_z, learned_z)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clipped, 1.0)
        opt.step()
        if step % p.eval_every == 0:
            ctx.log_metrics({"train_loss": float(loss.detach())}, step)
    loop_s, loop_cpu = time.perf_counter() - t0 - eval_s, time.process_time() - c0 - eval_cpu
    pol.history.update(conv.history(p.steps, p.eval_every, steps_run))
    # the policy's own Adam steps: the harness's global count would also take in the SFT
    # of π_ref, which only the first cell of each reference pays (later ones read the cache)
    pol.history["optimizer_steps"] = float(steps_run)
    pol.history.update({"queries_to_kl": pol.history["steps_to_kl"] * batch.per_step,
                        "queries_per_step": batch.per_step, "seconds_run": loop_s,
                        "cpu_seconds_run": loop_cpu,
                        "eval_seconds_in_loop": eval_s,
                        "seconds_per_step": loop_s / max(steps_run, 1)})
    if not math.isnan(seconds_to_kl):
        pol.history["cpu_seconds_to_kl"] = seconds_to_kl
    if learns_z:
        pol.history.update({"z_gap_init": float((pol.tau_log_z_init - tau_log_z).abs().mean()),
                            "z_gap_final": float((learned_z.detach() - tau_log_z).abs().mean())})
    pol.eval()
    return pol


@hookimpl
def bench_register_methods():
    return [MethodSpec("udrra", ("preference",),
                       "UDRRA unified DPO/RL losses (BDA, RA, RDA, PRA=DPO, IPO, online/posterior "
                       "variants, TRPA-style levels) on an enumerable preference task",
                       params=UDRRAParams, version="3")]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "udrra":
        return None
    if not isinstance(dataset, PreferenceData):
        raise BenchError("udrra needs the enumerable 'preference_synth' dataset (exact targets).")
    return train_udrra(UDRRAParams(**params), dataset, ctx)
