"""Training on signed ratings: every training rating (like or dislike) is a pair with a
weight ``w = r - offset`` and K sampled unobserved items (LSGRec, SiReN).

Why a second loop next to :mod:`harness.blocks.pairwise`: signed models need the rating
weight of each pair, K negatives drawn ∝ degree^0.75 among items the user has *not rated
at all* (a disliked item is not "unobserved"), several named loss terms, and the
official code's AdamW + MultiStepLR schedule. Validation early stopping is still
:func:`harness.training.fit`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..api import NonNegativeFloat, Params, PositiveFloat, PositiveInt, Rate
from ..signed import signed_train_triples
from ..training import fit
from .negatives import PositiveSet


class SignedParams(Params):
    """Defaults follow the LSGRec code (SiReN's code base): d 64, 2 layers, K 40."""

    dim: PositiveInt = 64
    n_layers: PositiveInt = 2
    epochs: PositiveInt = 40
    batch_size: PositiveInt = 2048
    lr: Rate = 5e-3
    weight_decay: NonNegativeFloat = 0.01  # torch AdamW's default, which the official code keeps
    lr_milestones: list[PositiveInt] = [20, 200]
    lr_gamma: PositiveFloat = 0.2
    reg_weight: NonNegativeFloat = 5e-5
    n_negatives: PositiveInt = 40
    degree_exponent: NonNegativeFloat = 0.75
    resample_every: PositiveInt = 1  # the code redraws negatives every 20 epochs
    patience: PositiveInt = 5
    eval_every: PositiveInt = 1


class DegreeNegativeSampler:
    """K items per rating drawn ∝ (training degree)^exponent among the items the user
    has not rated in training (either sign); items without training ratings are never
    drawn (probability 0)."""

    def __init__(self, dataset: Any, exponent: float = 0.75) -> None:
        rated = dataset.rated_matrix("train")
        self.rated = PositiveSet(rated)
        degree = np.asarray((rated > 0).sum(axis=0)).ravel().astype(np.float64)
        probs = np.where(degree > 0, degree, 0.0) ** exponent
        if probs.sum() <= 0:
            raise ValueError("no item has a training rating: nothing to sample negatives from")
        self.probs = torch.from_numpy(probs / probs.sum())

    def sample(self, users: torch.Tensor, k: int, rng: torch.Generator,
               max_rounds: int = 100) -> torch.Tensor:
        """LongTensor [len(users), k]. Rejected draws (rated items) are redrawn, and only
        those are re-checked: with popularity-skewed draws a full re-check per round
        (``PositiveSet.resample``) costs seconds per epoch on ml-100k."""
        draw = lambda n: torch.multinomial(self.probs, n, replacement=True, generator=rng)  # noqa: E731
        flat_users = users.repeat_interleave(k)
        items = draw(len(flat_users))
        todo = self.rated.contains(flat_users, items).nonzero().ravel()
        for _ in range(max_rounds):
            if len(todo) == 0:
                return items.reshape(len(users), k)
            items[todo] = draw(len(todo))
            todo = todo[self.rated.contains(flat_users[todo], items[todo])]
        raise RuntimeError("could not draw negatives: some users rated (almost) every item "
                           "that has a training rating")


def train_signed(model: torch.nn.Module, dataset: Any, ctx: Any, p: SignedParams) -> dict:
    """Mini-batch training over all signed training ratings.

    The model implements ``signed_loss(users, items, weights, negatives) -> dict`` of
    named, already weighted loss terms; their sum is minimised and each term's epoch
    mean is logged (``loss_<name>``).
    """
    if p.n_negatives < 1:
        raise ValueError(f"n_negatives must be at least 1, got {p.n_negatives}")
    users, items, weights = signed_train_triples(dataset)
    sampler = DegreeNegativeSampler(dataset, p.degree_exponent)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=p.lr_milestones, gamma=p.lr_gamma)
    order_rng, neg_rng = ctx.rng("train.order"), ctx.rng("sampler.degree")
    state: dict[str, torch.Tensor] = {}
    device = next(model.parameters()).device

    def epoch(e: int) -> float:
        if e % max(p.resample_every, 1) == 0 or "neg" not in state:
            state["neg"] = sampler.sample(users, p.n_negatives, neg_rng)
        order = torch.randperm(len(users), generator=order_rng)
        sums: dict[str, float] = {}
        total, batches = 0.0, 0
        for start in range(0, len(order), p.batch_size):
            idx = order[start:start + p.batch_size]
            terms = model.signed_loss(users[idx].to(device), items[idx].to(device),
                                      weights[idx].to(device), state["neg"][idx].to(device))
            loss = sum(terms.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        sched.step()
        ctx.log_metrics({f"loss_{k}": v / max(batches, 1) for k, v in sums.items()}, e)
        return total / max(batches, 1)

    return fit(model, epoch, dataset, ctx, epochs=p.epochs, eval_every=p.eval_every,
               patience=p.patience)


def sampled_scores(z_users: torch.Tensor, z_items: torch.Tensor, items: torch.Tensor,
                   negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(⟨u,i⟩ [B], ⟨u,j_k⟩ [B, K], ½(Σ‖u‖² + Σ‖i‖² + Σ_k‖j_k‖²)) for a batch.

    The L2 term is summed over the batch (the LSGRec/SiReN code's convention).
    """
    i, j = z_items[items], z_items[negatives]
    pos = (z_users * i).sum(-1)
    neg = (z_users.unsqueeze(1) * j).sum(-1)
    l2 = (z_users.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / 2
    return pos, neg, l2
