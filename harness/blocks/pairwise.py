"""Pairwise (BPR) training for any embedding recommender: MF, LightGCN, and their kin.

A model implements ``pairwise_loss(users, pos, neg) -> (bpr_loss, reg_loss)`` and
``score(users)``; negatives come from the sampling hook, so every sampler works with
every pairwise model by suite configuration alone. ``pairwise_loss`` may also take
``with_reg=False``: the loop passes it when ``reg_weight`` is 0, and the model may then
return ``None`` for the L2 term nobody reads.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
import torch.nn.functional as F

from pydantic import Field

from ..api import BenchError, NonNegativeFloat, Params, PositiveInt, Rate
from ..training import fit, fused_adam, minibatch_epoch


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


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` (rows of an embedding table, any index shape) through ``index_select``.

    Why: on CPU the backward of ``nn.Embedding`` (``embedding_dense_backward``) and of
    ``table[index]`` (``index_put_`` with accumulate) cost 2-2.5x the backward of
    ``index_select`` (``index_add_`` into zeros) for a batch of 2048 rows, and all three
    add a row's contributions in index order into zeros, so the gradient is bit-identical
    (``tests/test_pairwise_speed.py``). That backward was the largest cost of a BPR-MF step.
    On other devices ``index_add_`` uses atomics (run-to-run nondeterministic), so they keep
    the plain gather."""
    if table.device.type != "cpu":
        return table[index]
    return table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.shape[-1])


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
    opt = fused_adam(model.parameters(), lr=p.lr)
    rng = ctx.rng("train.order")
    pairwise_loss = _loss_function(model, need_reg=bool(p.reg_weight))
    sampler_params = dict(p.sampler_params, n=p.n_negatives)
    # diagnostic only (never feeds training): how often negatives are held-out positives
    from ..metrics_beyond import HeldOutPositives

    held = HeldOutPositives(dataset)
    false_neg = [0, 0]
    epoch_negatives: list[tuple[torch.Tensor, Any]] = []

    def batch_loss(u: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        neg = ctx.sample_negatives(p.sampler, sampler_params, u, pos, model, dataset)
        if isinstance(neg, torch.Tensor) and neg.dim() == 2 and neg.shape[1] == 1:
            neg = neg[:, 0]
        epoch_negatives.append((u, neg))
        loss, reg = pairwise_loss(u, pos, neg)
        if p.reg_weight:  # skipping 0*reg leaves loss and gradients bit-identical
            loss = loss + p.reg_weight * reg
        return loss

    def epoch(_: int) -> float:
        epoch_negatives.clear()
        loss = minibatch_epoch(len(users), p.batch_size, rng, opt, batch_loss, columns=(users, items))
        # the diagnostic is counted once per epoch, not per batch (same counts, less overhead)
        hits, seen = held.count_batches(epoch_negatives)
        false_neg[0] += hits
        false_neg[1] += seen
        epoch_negatives.clear()
        return loss

    history = fit(model, epoch, dataset, ctx, epochs=p.epochs, eval_every=p.eval_every,
                  patience=p.patience)
    if false_neg[1]:
        history["false_neg_rate"] = false_neg[0] / false_neg[1]
    return history


def _loss_function(model: torch.nn.Module, need_reg: bool):
    """``model.pairwise_loss``, told to skip its L2 term when the loop will not use it
    (``reg_weight: 0``) if it accepts ``with_reg`` (MF, LightGCN): the L2 of three
    batch-sized tensors is forward work no gradient ever reads."""
    if not need_reg and "with_reg" in inspect.signature(model.pairwise_loss).parameters:
        return functools.partial(model.pairwise_loss, with_reg=False)
    return model.pairwise_loss
