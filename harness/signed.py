"""The signed task: explicit ratings read as likes (positive links) and dislikes
(negative links), and the metrics that only make sense with dislikes.

Convention (the LSGRec/SiReN official code's, spec recsys_graph.md §2.1): with offset
``o`` (default 2.5), a rating ``r > o`` is a like and every other rating a dislike; a
training rating carries the weight ``w = r - o`` (its sign is the link's sign). On
MovieLens' 1-5 stars this gives likes = {3, 4, 5}, dislikes = {1, 2}. The split is the
suite's protocol over *all* ratings; ground truth for ranking is the liked held-out
events, disliked held-out events are kept for the negative-hit metrics, and known items
of both signs are masked at scoring. A dataset entry may set ``params: {sign_offset: x}``
(e.g. 3.5, SiReN's choice on ML-1M).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .api import MetricSpec

DEFAULT_SIGN_OFFSET = 2.5


def signed_train_triples(dataset: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(users, items, weights = rating - offset) for every training rating, both signs.

    Duplicate (user, item) ratings are kept as separate events, as the official code
    reads the rating file.
    """
    train = dataset.train
    return (torch.from_numpy(train.user.astype(np.int64)),
            torch.from_numpy(train.item.astype(np.int64)),
            torch.from_numpy((train.rating - dataset.sign_offset).astype(np.float32)))


def sign_diagnostics(dataset: Any) -> dict[str, float]:
    """How the ratings split into signs (logged with every cell's split diagnostics)."""
    out: dict[str, float] = {"sign_offset": float(dataset.sign_offset)}
    for part in ("train", "valid", "test"):
        out[f"n_{part}_likes"] = int(dataset.matrix(part).nnz)
        out[f"n_{part}_dislikes"] = int(dataset.negative_matrix(part).nnz)
    return out


def _disliked_in_topk(users: np.ndarray, items: torch.Tensor, valid: torch.Tensor,
                      dataset: Any, part: str, k: int) -> np.ndarray:
    """Boolean [n_users, k]: slot holds an item the user rated negatively in ``part``."""
    if not getattr(dataset, "is_signed", False):
        raise ValueError("negative-hit metrics need the 'signed' task (a dataset with "
                         f"dislikes); dataset '{dataset.name}' is a '{dataset.task}' task.")
    top = items[:, :k].numpy()
    ok = valid[:, :k].numpy()
    if len(users) == 0:
        return np.zeros((0, top.shape[1]), dtype=bool)
    neg = dataset.negative_matrix(part)[users]
    rows = np.repeat(np.arange(len(users)), top.shape[1])
    hit = np.asarray(neg[rows, top.ravel()]).reshape(top.shape) > 0
    return hit & ok


def negative_hit_rate(users, items, valid, dataset, part, k) -> np.ndarray:
    """Per ranked user: 1 if the top-k holds an item the user disliked in ``part``.

    Users without held-out dislikes score 0 (nothing disliked could be shown), so the
    ceiling is the share of ranked users with held-out dislikes; the ceiling is the same
    for every method on a split, so values compare across methods.
    """
    return _disliked_in_topk(users, items, valid, dataset, part, k).any(axis=1).astype(float)


def negative_precision(users, items, valid, dataset, part, k) -> np.ndarray:
    """Per ranked user: share of the k slots filled with items the user disliked."""
    return _disliked_in_topk(users, items, valid, dataset, part, k).sum(axis=1) / float(k)


def metric_specs() -> list[MetricSpec]:
    return [
        MetricSpec("neg_hit_rate", ("signed",), ranx=False, higher_is_better=False,
                   compute=negative_hit_rate,
                   description="share of users whose top-K holds an item they rated negatively "
                               "in the evaluated split (signed task; lower is better)"),
        MetricSpec("neg_precision", ("signed",), ranx=False, higher_is_better=False,
                   compute=negative_precision,
                   description="share of top-K slots filled with items the user rated "
                               "negatively in the evaluated split (signed task; lower is better)"),
    ]
