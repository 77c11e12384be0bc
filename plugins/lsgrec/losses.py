"""LSGRec's loss terms as pure functions of scores and embeddings (spec recsys_graph.md §2.3),
so each term's sign and gradient direction can be tested on its own.

``sign`` is ±1 per training rating (like / dislike); ``pos`` = ⟨u,i⟩ is [B] and
``neg`` = ⟨u,j_k⟩ is [B, K] over K sampled unobserved items, both in the same space
(positive space Z⁺ or negative space Z⁻); see :func:`harness.blocks.signed.sampled_scores`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def positive_bpr(pos: torch.Tensor, neg: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """−mean_b Σ_k log σ(c⁺·⟨u,i⟩ − ⟨u,j_k⟩) with c⁺ = 1.5 − 0.5·sign (1 for a like,
    2 for a dislike): in positive space every *rated* item, even a disliked one, should
    out-score unobserved items (a dislike needs only half the score to do so)."""
    c = (1.5 - 0.5 * sign).unsqueeze(1)
    return -F.logsigmoid(c * pos.unsqueeze(1) - neg).sum(1).mean()


def negative_bpr(pos: torch.Tensor, neg: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """−mean_b Σ_k log σ(⟨u,j_k⟩ − c⁻·⟨u,i⟩) with c⁻ = 1.5 + 0.5·sign (2 for a like,
    1 for a dislike), as the official code writes it: in negative space unobserved items
    should out-score rated ones, liked ones most of all."""
    c = (1.5 + 0.5 * sign).unsqueeze(1)
    return -F.logsigmoid(neg - c * pos.unsqueeze(1)).sum(1).mean()


def rating_mse(pred: torch.Tensor, weight: torch.Tensor, code_faithful: bool = False) -> torch.Tensor:
    """MSE between the predicted and the offset rating ``w = r − offset``.

    ``code_faithful`` reproduces the official code's shape bug: a [B] label against a
    [B, 1] prediction broadcasts to a [B, B] matrix, so every prediction is pulled
    towards every label in the batch (towards the batch mean rating).
    """
    if code_faithful:
        return F.mse_loss(pred.reshape(-1, 1).expand(-1, len(weight)),
                          weight.reshape(1, -1).expand(len(weight), -1))
    return F.mse_loss(pred.reshape(-1), weight.float())


def cross_decorrelation(u_pos, u_neg, i_pos, i_neg) -> torch.Tensor:
    """mean_b ⟨z⁺_u, z⁻_u⟩² + mean_b ⟨z⁺_i, z⁻_i⟩²: a node's like and dislike
    representations should be orthogonal."""
    return (u_pos * u_neg).sum(-1).pow(2).mean() + (i_pos * i_neg).sum(-1).pow(2).mean()
