"""UDRRA's unified loss family as one parameterised loss.

Every non-policy-gradient member is ``link(h, target)`` on a scalar
``h = scale·(ρ_a − ρ_b) + offset`` built from sequence log-ratios ρ = log π_θ/π_ref:

=================  ======================  ===================  =========
preset             h                       target               link
=================  ======================  ===================  =========
ra   (reward)      τ·ρ(y) + τ·log Z(x)     r(y)                 squared
rda  (reward diff) τ·(ρ(y1) − ρ(y2))       r(y1) − r(y2)        squared
pra  (= DPO)       τ·(ρ(y_w) − ρ(y_l))     (the ordering)       logistic
ipo  (contrast)    ρ(y_w) − ρ(y_l)         1/(2τ)               squared
trpa_style         τ_w·(ρ(y_w) − ρ(y_l))   (level ordering)     logistic
=================  ======================  ===================  =========

RA, RDA and PRA all have π^τ = π_ref·exp(r/τ)/Z as minimiser when the data cover Y
(PRA with Bradley–Terry labels P(y1 ≻ y2) = σ(r1 − r2)); IPO's squared target is a
constant, so it converges elsewhere. ``trpa_style`` (TRPA's rule-preference instance:
rewards quantised into levels, pairs across levels inside a prompt's online group,
τ_w = a·τ for a best-level winner) has deterministic labels, so it keeps pushing mass
to the top level instead of stopping at π^τ. BDA (scenario 1) is the KL-regularised RL objective:
exactly ``KL(π_θ‖π^τ)`` by enumeration, or its REINFORCE estimator on sampled responses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.tasks.levels import pair_margins

LINKS = ("squared", "logistic")


def unified_loss(h: torch.Tensor, target: torch.Tensor | float | None, link: str,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``(h − target)²`` (squared) or ``−log σ(h)`` (logistic: ``h`` is already
    oriented winner-minus-loser). ``weight`` gives soft labels for the logistic link:
    ``−[w·log σ(h) + (1−w)·log σ(−h)]``."""
    if link == "squared":
        if target is None:
            raise ValueError("the squared link needs a target")
        return ((h - target) ** 2).mean()
    if link == "logistic":
        if weight is None:
            return -F.logsigmoid(h).mean()
        return -(weight * F.logsigmoid(h) + (1 - weight) * F.logsigmoid(-h)).mean()
    raise ValueError(f"unknown link '{link}' ({', '.join(LINKS)})")


def ra_loss(rho: torch.Tensor, reward: torch.Tensor, tau: float, tau_log_z: torch.Tensor):
    """Reward approximation: implicit reward τρ + τ·log Z regressed on r."""
    return unified_loss(tau * rho + tau_log_z, reward, "squared")


def rda_loss(rho1, rho2, r1, r2, tau: float):
    """Reward-difference approximation: Z cancels."""
    return unified_loss(tau * (rho1 - rho2), r1 - r2, "squared")


def pra_loss(rho_w, rho_l, tau: float, weight=None):
    """Preference approximation = the DPO loss."""
    return unified_loss(tau * (rho_w - rho_l), None, "logistic", weight)


def leveled_pra_loss(rho: torch.Tensor, levels: torch.Tensor, pairs: list[tuple[int, int]],
                     tau: float, anisotropy: float) -> torch.Tensor:
    """TRPA-style member: PRA on (winner, loser) pairs across quantised reward levels, with
    the winner's τ multiplied by ``anisotropy`` when it is level 1 (the best level).
    With no pair (one level only) the loss is 0: nothing is preferred."""
    if not pairs:
        return rho.sum() * 0.0
    margins, _, _ = pair_margins(rho, levels, pairs, tau, anisotropy)
    return unified_loss(margins, None, "logistic")


def reward_levels(reward: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Quantise rewards in [0, 1] into levels 1 (best) .. ``n_levels`` on equal-width bins."""
    return (n_levels - (reward.clamp(0, 1) * n_levels).floor().clamp(max=n_levels - 1)).long()


def ipo_loss(rho_w, rho_l, tau: float):
    return unified_loss(rho_w - rho_l, 1.0 / (2.0 * tau), "squared")


def bda_exact_loss(logp: torch.Tensor, target_logp: torch.Tensor) -> torch.Tensor:
    """KL(π_θ‖π^τ) per prompt from log-probs over every response, averaged over prompts."""
    return (logp.exp() * (logp - target_logp)).sum(-1).mean()


def bda_reinforce_loss(logp_y: torch.Tensor, rho_y: torch.Tensor, reward: torch.Tensor,
                       tau: float, group: torch.Tensor) -> torch.Tensor:
    """REINFORCE on the KL-regularised reward r − τ·ρ with a per-prompt mean baseline.

    ``logp_y``: log π_θ(y) (with grad); ``rho_y``: log-ratio (detached inside);
    ``group``: prompt index of each sample (the baseline is that prompt's mean)."""
    reg = (reward - tau * rho_y.detach())
    n = int(group.max()) + 1
    sums = torch.zeros(n, dtype=reg.dtype).index_add_(0, group, reg)
    counts = torch.zeros(n, dtype=reg.dtype).index_add_(0, group, torch.ones_like(reg))
    adv = reg - (sums / counts.clamp(min=1))[group]
    return -(adv * logp_y).mean()
