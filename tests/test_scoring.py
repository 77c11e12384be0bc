"""Ranking metrics, tie-breaking, masking and batch-size independence."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from harness.data.dataset import Dataset
from harness.data.interactions import Interactions
from harness.data.synthetic import generate
from harness.data.splits import random_ratio
from harness.scoring import full_ranking_topk, ranx_evaluate, score_ranking, topk_with_tiebreak


class FixedScores(torch.nn.Module):
    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__()
        self.scores = scores

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores[users].clone()


def test_hand_computed_metrics():
    # user 0: relevant {1, 3}; ranked list 3, 0, 1  -> hits at ranks 1 and 3
    # user 1: relevant {2};    ranked list 0, 1, 2  -> hit at rank 3
    truth = sp.csr_matrix(np.array([[0, 1, 0, 1], [0, 0, 1, 0]], dtype=np.float32))
    items = torch.tensor([[3, 0, 1], [0, 1, 2]])
    valid = torch.ones_like(items, dtype=torch.bool)
    means, per_user = ranx_evaluate(np.array([0, 1]), items, valid, truth,
                                    ["ndcg@3", "recall@3", "mrr@3", "recall@1", "hit_rate@1"])
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3)
    ndcg1 = (1 / math.log2(4)) / 1.0
    assert per_user["ndcg@3"]["0"] == pytest.approx(dcg0 / idcg0)
    assert per_user["ndcg@3"]["1"] == pytest.approx(ndcg1)
    assert means["ndcg@3"] == pytest.approx((dcg0 / idcg0 + ndcg1) / 2)
    assert means["recall@3"] == pytest.approx(1.0)
    assert means["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert means["recall@1"] == pytest.approx(0.25)  # user 0: 1 of 2, user 1: 0 of 1
    assert means["hit_rate@1"] == pytest.approx(0.5)


def test_topk_ties_are_broken_by_item_id():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (50, 200), generator=gen).float()  # massive ties
    vals, idx = topk_with_tiebreak(scores, 10)
    expected = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :10]
    assert torch.equal(idx, expected)
    assert torch.equal(vals, scores.gather(1, expected))


def _dataset(seed: int = 0) -> Dataset:
    data = generate(n_users=120, n_items=150, n_interactions=3000, seed=seed)
    tr, va, te = random_ratio(data, seed=seed)
    return Dataset("synthetic", "topk", data, tr, va, te, split_id="test")


def test_training_items_never_recommended_and_batch_independent():
    ds = _dataset()
    torch.manual_seed(0)
    # integer-valued scores make ties common, the hard case for batch independence
    model = FixedScores(torch.randint(0, 5, (ds.n_users, ds.n_items)).float())
    results = [score_ranking(model, ds, "test", ["ndcg@10", "recall@20"],
                             _ranx_metrics(), chunk_size=c) for c in (1, 7, 1000)]
    users, items, valid = results[0].topk
    excluded = ds.exclusion_matrix("test")
    for row, u in enumerate(users):
        seen = set(excluded.indices[excluded.indptr[u]:excluded.indptr[u + 1]])
        assert not seen & set(items[row][valid[row]].tolist())
    for other in results[1:]:
        assert other.metrics == results[0].metrics
        assert torch.equal(other.topk[1], items)


def test_users_with_fewer_items_than_k_get_short_lists():
    data = Interactions(np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0]), 2, 4)
    ds = Dataset("x", "topk", data, np.array([0, 1]), np.array([], int), np.array([2, 3]), "s")
    items, valid = full_ranking_topk(FixedScores(torch.zeros(2, 4)), np.array([0]),
                                     ds.exclusion_matrix("test"), k=4)
    assert valid[0].tolist() == [True, True, False, False]
    assert items[0, :2].tolist() == [2, 3]


def _ranx_metrics():
    from harness.registry import Registry

    return Registry(autoload=False).catalogue.metrics
