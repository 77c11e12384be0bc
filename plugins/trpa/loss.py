"""The TRPA loss (Su et al., arXiv 2504.04524; official verl code, core_algos.py).

Pairs are formed inside each prompt's group across distinct preference levels (lower
level = better); the sequence score is the per-token MEAN log-ratio against the frozen
initial model; the winner's β is multiplied by ``anisotropy`` when it is level 1 (KTPO);
a trust-region term k3(π_θ‖π_old) keeps the update near the rollout policy (it is zero
at the first inner step, so it only acts with more than one inner step per batch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.tasks.levels import pair_margins


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def k3(logp: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
    """verl's ``low_var_kl``: exp(Δ) − Δ − 1 with Δ = log π_old − log π_θ, clamped."""
    delta = torch.clamp(logp_old - logp, -20, 20)
    return torch.clamp(delta.exp() - delta - 1, -10, 10)


def trpa_loss(logp: torch.Tensor, ref_logp: torch.Tensor, old_logp: torch.Tensor,
              mask: torch.Tensor, levels: list[int], pairs: list[tuple[int, int]],
              beta: float = 0.1, anisotropy: float = 2.5, tr_coef: float = 1e-3,
              sqrt_tr: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token log-probs ``[B, T]`` (masked by ``mask``) -> (loss, stats).

    With no pair in the batch (one level only), the official fallback
    −log σ(s·ρ) with s = +1 for level-1 responses and −1 otherwise is used (no β).
    """
    mask = mask.float()
    rho = masked_mean(logp - ref_logp, mask, dim=-1)               # [B]
    lv = torch.tensor(levels, device=logp.device)
    if pairs:
        margins, w, l_ = pair_margins(rho, lv, pairs, beta, anisotropy)
        pair_loss = -F.logsigmoid(margins).mean()
        h_high, h_low = float(rho[w].mean().detach()), float(rho[l_].mean().detach())
    else:
        sign = torch.where(lv == 1, 1.0, -1.0)
        pair_loss = -F.logsigmoid(sign * rho).mean()
        h_high = h_low = float("nan")
    tr = masked_mean(k3(logp, old_logp), mask)
    tr_term = torch.sqrt(tr + 0.25) if sqrt_tr else tr
    loss = pair_loss + tr_coef * tr_term
    return loss, {"pair_loss": float(pair_loss.detach()), "tr_kl": float(tr.detach()), "n_pairs": len(pairs),
                  "h_high": h_high, "h_low": h_low}
