"""A preference task small enough to enumerate every response (UDRRA spec §2.4).

K prompts (one token each), responses of L tokens from a vocabulary of V, so |Y| = V**L
per prompt (216 by default). With every response enumerable, the target
π^τ(y|x) = π_ref(y|x)·exp(r(x,y)/τ)/Z_τ(x) and every KL are exact sums, not estimates.

The reward r(x,y) = Σ_t W_x[t, y_t] + bonus·[y = pattern_x], min-max scaled to [0, 1]
per prompt. π_ref is learnt by maximum likelihood from samples of a skewed "base"
distribution that puts little mass on high-reward responses (so alignment has work to
do); a second, "bad" distribution with even poorer coverage of the top responses feeds
the off-policy data regime.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from ..api import BenchError, TaskData


@dataclass
class PreferenceData(TaskData):
    """Every part (train/valid/test) is the list of prompt ids: metrics are exact over
    all responses, so there is nothing to hold out; ``train`` also names the prompts
    pairs are drawn for."""

    n_prompts: int = 8
    length: int = 3
    vocab: int = 6
    rewards: torch.Tensor = None          # [K, |Y|] in [0, 1]
    responses: torch.Tensor = None        # [|Y|, L] token indices 0..V-1
    base_probs: torch.Tensor = None       # [K, |Y|] skewed base distribution (π_ref's data)
    bad_probs: torch.Tensor = None        # [K, |Y|] poor-coverage off-policy distribution
    ref_samples: int = 4000

    def prompt_text(self, x: int) -> str:
        return f"q{x}"

    def response_text(self, y: int) -> str:
        return " ".join(f"r{t}" for t in self.responses[y].tolist())

    def corpus(self) -> list[str]:
        return [self.prompt_text(x) for x in range(self.n_prompts)] + \
               [" ".join(f"r{v}" for v in range(self.vocab))]

    def sft_pairs(self, seed: int = 0) -> tuple[list[str], list[str]]:
        """Samples from the base distribution: π_ref is this data's maximum-likelihood fit."""
        g = torch.Generator().manual_seed(seed)
        per = max(1, self.ref_samples // self.n_prompts)
        prompts, responses = [], []
        for x in range(self.n_prompts):
            ys = torch.multinomial(self.base_probs[x], per, replacement=True, generator=g)
            prompts += [self.prompt_text(x)] * per
            responses += [self.response_text(int(y)) for y in ys]
        return prompts, responses


def exact_target(ref_logp: torch.Tensor, rewards: torch.Tensor, tau: float) -> torch.Tensor:
    """log π^τ = log π_ref + r/τ − log Z_τ, per prompt (rows), normalised exactly."""
    if tau <= 0:
        raise BenchError(f"tau must be > 0, got {tau}.")
    logits = ref_logp + rewards / tau
    return logits - torch.logsumexp(logits, -1, keepdim=True)


def tau_log_partition(ref_logp: torch.Tensor, rewards: torch.Tensor, tau: float) -> torch.Tensor:
    """τ·log Z_τ(x) = τ·log Σ_y π_ref(y|x)·exp(r(x,y)/τ) per prompt, summed over the whole
    enumerated response set: the closed form of the scalar RA's implicit reward needs
    (r_θ = τ·log π_θ/π_ref + τ·log Z), and the warm start of a learnt log Z."""
    if tau <= 0:
        raise BenchError(f"tau must be > 0, got {tau}.")
    return tau * torch.logsumexp(ref_logp + rewards / tau, -1)


def kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Exact KL(p‖q) per row from log-probabilities over the same enumerated support."""
    p = logp.exp()
    return (p * (logp - logq)).sum(-1)


def tv(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp.exp() - logq.exp()).abs().sum(-1)


def make_preference(n_prompts: int = 8, length: int = 3, vocab: int = 6, bonus: float = 1.0,
                    skew: float = 3.0, ref_samples: int = 4000, seed: int = 0) -> PreferenceData:
    if n_prompts < 1 or length < 1 or vocab < 2:
        raise BenchError("preference: need n_prompts >= 1, length >= 1, vocab >= 2.")
    if vocab ** length > 5000:
        raise BenchError(f"preference: vocab**length = {vocab ** length} responses per prompt is "
                         "too many to enumerate (max 5000).")
    g = torch.Generator().manual_seed(seed)
    responses = torch.tensor(list(itertools.product(range(vocab), repeat=length)))
    W = torch.randn(n_prompts, length, vocab, generator=g)
    raw = W[:, torch.arange(length), responses].sum(-1)          # [K, |Y|]
    pattern = torch.randint(vocab, (n_prompts, length), generator=g)
    match = (responses.unsqueeze(0) == pattern.unsqueeze(1)).all(-1).float()
    raw = raw + bonus * raw.std(-1, keepdim=True) * match
    lo, hi = raw.min(-1, keepdim=True).values, raw.max(-1, keepdim=True).values
    rewards = (raw - lo) / (hi - lo)
    # base: factorised per-position distribution anti-correlated with W (+ noise)
    base_logits = -skew * W / W.std() * 0.5 + 0.5 * torch.randn(W.shape, generator=g)
    base_tok = torch.log_softmax(base_logits, -1)
    base = base_tok[:, torch.arange(length), responses].sum(-1).exp()
    base = base / base.sum(-1, keepdim=True)
    bad_tok = torch.log_softmax(2 * base_logits, -1)
    bad = bad_tok[:, torch.arange(length), responses].sum(-1).exp()
    bad = bad / bad.sum(-1, keepdim=True)
    prompts = list(range(n_prompts))
    fp = {"n_prompts": n_prompts, "length": length, "vocab": vocab, "bonus": bonus,
          "skew": skew, "ref_samples": ref_samples, "seed": seed, "version": 1}
    diag = {"responses_per_prompt": int(len(responses)),
            "base_expected_reward": float((base * rewards).sum(-1).mean()),
            "bad_expected_reward": float((bad * rewards).sum(-1).mean()),
            "max_reward_mass_base": float((base * (rewards == 1).float()).sum(-1).mean())}
    return PreferenceData("preference_synth", "preference", prompts, prompts, prompts,
                          fingerprint=fp, protocol={"metrics": "exact-enumeration"},
                          diagnostics=diag, n_prompts=n_prompts, length=length, vocab=vocab,
                          rewards=rewards, responses=responses, base_probs=base, bad_probs=bad,
                          ref_samples=ref_samples)


def preference_metrics(logp: torch.Tensor, ref_logp: torch.Tensor, rewards: torch.Tensor,
                       tau: float) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Exact metrics of a policy given as log-probs over every response, per prompt (rows).

    Returns (means, per-prompt tensors): KL(π‖π^τ) (the BDA objective), KL(π^τ‖π), TV to
    π^τ, expected reward, KL(π‖π_ref), and the target's own expected reward for scale.
    """
    target = exact_target(ref_logp, rewards, tau)
    per = {"kl_target": kl(logp, target), "kl_target_rev": kl(target, logp),
           "tv_target": tv(logp, target), "expected_reward": (logp.exp() * rewards).sum(-1),
           "kl_ref": kl(logp, ref_logp), "target_reward": (target.exp() * rewards).sum(-1)}
    return {k: float(v.mean()) for k, v in per.items()}, per
