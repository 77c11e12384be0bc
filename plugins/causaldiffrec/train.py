"""CausalDiffRec's two schedules.

``head: persistent`` (default, spec §3.5): learn the representation for ``rep_epochs``,
denoise the train graph's node embeddings once, initialise one LightGCN with them and
train it with BPR under the harness's validation early stopping.

``head: per_epoch_fresh`` (official code): every epoch makes ``outer_steps``
representation updates, then a *fresh* LightGCN initialised from ẑ₀ gets one BPR pass
over fixed negatives, and the epoch is scored on ``select_on``; the best epoch is kept.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from harness.blocks.graph import LightGCN, mean_readout, normalized_adjacency, propagate
from harness.blocks.pairwise import PairwiseParams, train_pairwise

from harness.api import (TrainResult, budget_history, full_ranking_topk, max_cutoff, mlflow_name,
                         ranx_evaluate, score_ranking)

from .modules import Representation, dense_adjacency


class UnmaskedScorer(torch.nn.Module):
    """Final user/item embeddings scored by dot product; with ``mask_train_items``
    false it ranks training items too (the official evaluation)."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, mask_train_items: bool) -> None:
        super().__init__()
        self.register_buffer("users", users.detach().clone())
        self.register_buffer("items", items.detach().clone())
        self.mask_train_items = mask_train_items

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.users[users] @ self.items.T

    def score_unmasked(self, dataset, part: str, metrics: list[str], ctx):
        if self.mask_train_items:
            return score_ranking(self, dataset, part, metrics, ctx.registry.catalogue.metrics,
                                 chunk_size=ctx.eval_chunk_size, device=ctx.device)
        truth = dataset.matrix(part)
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
        nothing = sp.csr_matrix(truth.shape, dtype=np.float32)
        items, valid = full_ranking_topk(self, users, nothing, max_cutoff(metrics),
                                         chunk_size=ctx.eval_chunk_size, device=ctx.device)
        from harness.api import ScoreResult

        means, per_user = ranx_evaluate(users, items, valid, truth, metrics)
        return ScoreResult(metrics=means, per_user=per_user, topk=(users, items, valid))


class _SelectOnTest:
    """The official code picks its epoch on test; this context reproduces that leak."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def validate(self, model, dataset) -> float:
        return self._ctx.score(model, dataset, "test", [self._ctx.valid_metric]).metrics[self._ctx.valid_metric]


def node_features(n_nodes: int, dim: int, seed: int) -> torch.Tensor:
    """Fixed ReLU(random Linear(one-hot id)): the official code's node features."""
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / np.sqrt(n_nodes)
    w = (torch.rand(n_nodes, dim, generator=g) * 2 - 1) * bound
    b = (torch.rand(dim, generator=g) * 2 - 1) * bound
    return torch.relu(w + b)


def _graphs(dataset, part: str, symmetric: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    coo = dataset.matrix(part).tocoo()
    dense = dense_adjacency(dataset.n_users, dataset.n_items, coo.row, coo.col, symmetric)
    sparse = normalized_adjacency(dataset.n_users, dataset.n_items, coo.row, coo.col, device=device)
    return dense, sparse


def _head(dataset, p, adj: torch.Tensor, ego: torch.Tensor) -> LightGCN:
    head = LightGCN(dataset.n_users, dataset.n_items, p.dim, p.n_layers, adj)
    with torch.no_grad():
        head.user.weight.copy_(ego[: dataset.n_users])
        head.item.weight.copy_(ego[dataset.n_users:])
    return head


def _scorer(dataset, p, rep: Representation, head: LightGCN, a_eval: torch.Tensor,
            adj_eval: torch.Tensor) -> torch.nn.Module:
    """What scores test: the trained head on the train graph (sound), or the official
    code's untrained LightGCN over the evaluation graph's re-encoded embeddings."""
    if p.score_with == "trained_head" and p.eval_graph == "train":
        if p.mask_train_items:
            return head
        u, i = head.embeddings()
        return UnmaskedScorer(u, i, False)
    ego = rep.infer(a_eval) if p.score_with == "untrained_head" else head.ego().detach()
    final = mean_readout(propagate(adj_eval, ego, p.n_layers))
    return UnmaskedScorer(final[: dataset.n_users], final[dataset.n_users:], p.mask_train_items)


def train(p, dataset, ctx) -> torch.nn.Module:
    t0 = time.perf_counter()
    n = dataset.n_users + dataset.n_items
    rep = Representation(p, dataset.n_users, dataset.n_items,
                         node_features(n, p.feat_dim, ctx.seed))
    a_train, adj_train = _graphs(dataset, "train", p.symmetrize_edges, ctx.device)
    if p.eval_graph == "test":
        a_eval, adj_eval = _graphs(dataset, "test", p.symmetrize_edges, ctx.device)
    else:
        a_eval, adj_eval = a_train, adj_train
    select_ctx = _SelectOnTest(ctx) if p.select_on == "test" else ctx
    pairwise = PairwiseParams(dim=p.dim, epochs=p.head_epochs, batch_size=p.batch_size,
                              lr=p.head_lr, reg_weight=p.reg_weight, sampler=p.sampler,
                              patience=p.patience, eval_every=p.eval_every)
    if p.head == "persistent":
        stats: dict[str, float] = {}
        for epoch in range(p.rep_epochs):
            stats = rep.epoch(a_train)
            ctx.log_metrics({f"rep_{k}": v for k, v in stats.items()}, epoch)
        rep_s = time.perf_counter() - t0
        head = _head(dataset, p, adj_train, rep.infer(a_train))
        history = train_pairwise(head, dataset, select_ctx, pairwise)
        model = _scorer(dataset, p, rep, head, a_eval, adj_eval)
    else:
        model, history = _per_epoch_fresh(p, dataset, ctx, select_ctx, rep, a_train,
                                          adj_train, a_eval, adj_eval)
        rep_s = None
    history = {**history, "representation_updates": rep.updates}
    if rep_s is not None:
        history["representation_seconds"] = rep_s
    return TrainResult(model, history)


def _per_epoch_fresh(p, dataset, ctx, select_ctx, rep, a_train, adj_train, a_eval, adj_eval):
    users, items = dataset.train_pairs()
    # one negative per positive, drawn once ("fixed at dataset build time")
    neg = ctx.sample_negatives(p.sampler, {"n": 1}, users, items, None, dataset)
    neg = neg[:, 0] if neg.dim() == 2 else neg
    rng = ctx.rng("causaldiffrec.order")
    best, best_value, best_epoch = None, -float("inf"), -1
    for epoch in range(p.rep_epochs):
        rep.epoch(a_train)
        head = _head(dataset, p, adj_train, rep.infer(a_train))
        opt = torch.optim.Adam(head.parameters(), lr=p.head_lr)
        head.train()
        order = torch.randperm(len(users), generator=rng)
        for start in range(0, len(order), p.batch_size):
            idx = order[start:start + p.batch_size]
            loss, reg = head.pairwise_loss(users[idx], items[idx], neg[idx])
            opt.zero_grad()
            (loss + p.reg_weight * reg).backward()
            opt.step()
        head.eval()
        scorer = _scorer(dataset, p, rep, head, a_eval, adj_eval)
        value = select_ctx.validate(scorer, dataset)
        ctx.report("select_" + mlflow_name(ctx.valid_metric), value, epoch)
        if value > best_value:
            best, best_value, best_epoch = scorer, value, epoch
    # no early stopping in this mode: the whole budget runs and the best epoch is kept
    return best, {"best_epoch": best_epoch, "best_valid": best_value, "epochs_run": p.rep_epochs,
                  **budget_history(best_epoch, p.rep_epochs, p.patience)}
