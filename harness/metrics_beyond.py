"""Beyond-accuracy metrics for any ranking model: popularity bias (long-tail share of
the top-K), accuracy on sparse users, and the false-hard-negative rate of a sampler.

Why here and not in a plugin: negative-sampling and debiasing papers all claim effects
on the long tail, on cold users and on false negatives; measuring them the same way for
every method is what makes those claims comparable. The two ranking metrics are
registered by :mod:`harness.core_plugin` as non-ranx metrics (``tail_share@K``,
``sparse_ndcg@K``); the false-negative rate is a training-time quantity the pairwise
loop logs (``false_neg_rate``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .api import RANKING_TASKS, MetricSpec

#: the head is the most popular HEAD_SHARE of items (by training degree); the rest is tail
HEAD_SHARE = 0.2
#: sparse users: training count at or below this quantile of users' training counts
SPARSE_QUANTILE = 0.25


def tail_items(dataset: Any, head_share: float = HEAD_SHARE) -> np.ndarray:
    """Boolean mask over items: True for the long tail (outside the top ``head_share`` of
    items by training popularity; ties at the boundary broken by item id)."""
    pop = dataset.item_popularity()
    n_head = int(round(head_share * len(pop)))
    order = np.lexsort((np.arange(len(pop)), -pop))  # popularity desc, then id asc
    tail = np.ones(len(pop), dtype=bool)
    tail[order[:n_head]] = False
    return tail


def tail_share(users, items: torch.Tensor, valid: torch.Tensor, dataset, part, k, **_) -> np.ndarray:
    """Per user: share of the (valid) top-k slots filled with long-tail items."""
    tail = torch.from_numpy(tail_items(dataset))
    items, valid = items[:, :k], valid[:, :k]
    hits = (tail[items] & valid).sum(1).float()
    return (hits / valid.sum(1).clamp(min=1).float()).numpy()


def sparse_users(dataset: Any, quantile: float = SPARSE_QUANTILE) -> np.ndarray:
    """Boolean mask over users: training count ≤ the ``quantile`` of the training counts
    of users who have any (cold users with 0 training events count as sparse)."""
    counts = np.diff(dataset.train_matrix.indptr)
    active = counts[counts > 0]
    cut = np.quantile(active, quantile) if len(active) else 0
    return counts <= cut


def sparse_ndcg(users, items: torch.Tensor, valid: torch.Tensor, dataset, part, k, **_) -> np.ndarray:
    """Per user: ranx NDCG@k for sparse users, NaN for the others (the scorer averages
    over the non-NaN values, so the mean is over sparse users only)."""
    from .scoring import ranx_evaluate

    out = np.full(len(users), np.nan)
    pick = np.flatnonzero(sparse_users(dataset)[users])
    if len(pick) == 0:
        return out
    name = f"ndcg@{k}"
    _, per_user = ranx_evaluate(np.asarray(users)[pick], items[pick, :k], valid[pick, :k],
                                dataset.matrix(part), [name])
    out[pick] = [per_user[name][str(u)] for u in np.asarray(users)[pick]]
    return out


def metric_specs() -> list[MetricSpec]:
    return [
        MetricSpec("tail_share", RANKING_TASKS, ranx=False, compute=tail_share,
                   description=f"share of top-K slots holding long-tail items (outside the "
                               f"{HEAD_SHARE:.0%} most popular in training); popularity bias"),
        MetricSpec("sparse_ndcg", RANKING_TASKS, ranx=False, compute=sparse_ndcg,
                   description=f"NDCG@K (ranx) over sparse users only (training count ≤ the "
                               f"{SPARSE_QUANTILE:.0%} quantile)"),
    ]


# --- false hard negatives (a training-time quantity) ----------------------------------------

class HeldOutPositives:
    """Membership in a user's validation ∪ test positives: a sampled negative found there
    is a *false* negative (an item the user does interact with, just not in training)."""

    def __init__(self, dataset: Any) -> None:
        from .blocks.negatives import PositiveSet

        held = dataset.matrix("valid") + dataset.matrix("test")
        self.positives = PositiveSet(held.tocsr())

    def count(self, users: torch.Tensor, negatives: Any) -> tuple[int, int]:
        """(false negatives, negatives) in a batch; ``negatives`` is item ids ``[B]`` /
        ``[B, n]`` or a recipe with an ``items`` tensor (MixGCF's chosen candidates)."""
        items = getattr(negatives, "items", negatives)
        if not isinstance(items, torch.Tensor):
            return 0, 0
        from .blocks.negatives import slot_owners

        items = items.cpu()
        hit = self.positives.contains(slot_owners(users.cpu(), items), items.reshape(-1))
        return int(hit.sum()), int(items.numel())

    def count_batches(self, batches: list[tuple[torch.Tensor, Any]]) -> tuple[int, int]:
        """:meth:`count` summed over ``(users, negatives)`` batches, in one membership
        test when every batch's negatives are item-id tensors of the same trailing shape
        (one call per epoch instead of one per batch)."""
        items = [getattr(neg, "items", neg) for _, neg in batches]
        if batches and all(isinstance(i, torch.Tensor) for i in items) \
                and len({tuple(i.shape[1:]) for i in items}) == 1:
            return self.count(torch.cat([u.cpu() for u, _ in batches]),
                              torch.cat([i.cpu() for i in items]))
        counts = [self.count(u, neg) for u, neg in batches]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)
