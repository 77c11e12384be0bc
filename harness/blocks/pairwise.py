"""Pairwise (BPR) training for any embedding recommender: MF, LightGCN, and their kin.

A model implements ``pairwise_loss(users, pos, neg) -> (bpr_loss, reg_loss)`` and
``score(users)``; negatives come from the sampling hook, so every sampler works with
every pairwise model by suite configuration alone.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pydantic import Field

from ..api import BenchError, NonNegativeFloat, Params, PositiveInt, Rate
from ..training import fit, minibatch_epoch


class PairwiseParams(Params):
    dim: PositiveInt = 64
    epochs: PositiveInt = 50
    batch_size: PositiveInt = 2048
    lr: Rate = 1e-3
    reg_weight: NonNegativeFloat = 1e-4
    n_negatives: PositiveInt = 1
    sampler: str = "uniform"
    sampler_params: dict = Field(default_factory=dict, description="the sampler's params "
                                 "(`bench describe SAMPLER`); `n` comes from n_negatives")
    patience: PositiveInt = 5
    eval_every: PositiveInt = 1


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """-log σ(s⁺ − s⁻), averaged; ``neg_scores`` may carry several negatives per pair."""
    if neg_scores.dim() == 2:
        pos_scores = pos_scores.unsqueeze(1)
    return -F.logsigmoid(pos_scores - neg_scores).mean()


#: pairwise ranking losses a model can train with (``ranking_loss``'s ``kind``)
RANKING_LOSSES = ("bpr", "hinge")


def ranking_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, kind: str = "bpr",
                 margin: float = 0.3) -> torch.Tensor:
    """BPR (``-log σ(s⁺ − s⁻)``) or hinge (``max(0, m − s⁺ + s⁻)``, HNLMRec's loss), averaged.

    One function for every pairwise model, so a comparison that holds the loss fixed (e.g.
    heuristic samplers vs HNLMRec, both under hinge) changes the sampler and nothing else."""
    if kind == "bpr":
        return bpr_loss(pos_scores, neg_scores)
    if kind == "hinge":
        if neg_scores.dim() == 2:
            pos_scores = pos_scores.unsqueeze(1)
        return F.relu(neg_scores - pos_scores + margin).mean()
    raise BenchError(f"unknown ranking loss '{kind}' (known: {', '.join(RANKING_LOSSES)}).")


def embedding_l2(*tensors: torch.Tensor) -> torch.Tensor:
    """Squared L2 of the (ego) embeddings in the batch, per pair (LightGCN's convention)."""
    n = tensors[0].shape[0]
    return sum(t.pow(2).sum() for t in tensors) / 2 / n


def check_sampler(sampler: str, model: Any, ctx: Any) -> None:
    """Fail before training when the sampler is unknown or needs something the model
    lacks (a :class:`SamplerSpec`'s ``requires`` names model attributes, e.g. MixGCF's
    ``layer_embeddings``), instead of deep inside the first batch."""
    samplers = ctx.registry.catalogue.samplers
    if sampler not in samplers:
        raise BenchError(f"unknown negative sampler '{sampler}' (known: {', '.join(sorted(samplers))}).")
    missing = [r for r in samplers[sampler].requires if not hasattr(model, r)]
    if missing:
        raise BenchError(f"sampler '{sampler}' needs a model with {', '.join(missing)} (a graph "
                         f"model such as lightgcn); {type(model).__name__} has none.")


def train_pairwise(model: torch.nn.Module, dataset: Any, ctx: Any, p: PairwiseParams) -> dict:
    check_sampler(p.sampler, model, ctx)
    users, items = dataset.train_pairs()
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    rng = ctx.rng("train.order")
    # diagnostic only (never feeds training): how often negatives are held-out positives
    from ..metrics_beyond import HeldOutPositives

    held, false_neg = HeldOutPositives(dataset), [0, 0]

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        u, pos = users[idx], items[idx]
        neg = ctx.sample_negatives(p.sampler, dict(p.sampler_params, n=p.n_negatives),
                                   u, pos, model, dataset)
        if isinstance(neg, torch.Tensor) and neg.dim() == 2 and neg.shape[1] == 1:
            neg = neg[:, 0]
        hits, seen = held.count(u, neg)
        false_neg[0] += hits
        false_neg[1] += seen
        loss, reg = model.pairwise_loss(u, pos, neg)
        if p.reg_weight:  # skipping 0*reg leaves loss and gradients bit-identical
            loss = loss + p.reg_weight * reg
        return loss

    def epoch(_: int) -> float:
        return minibatch_epoch(len(users), p.batch_size, rng, opt, batch_loss)

    history = fit(model, epoch, dataset, ctx, epochs=p.epochs, eval_every=p.eval_every,
                  patience=p.patience)
    if false_neg[1]:
        history["false_neg_rate"] = false_neg[0] / false_neg[1]
    return history
