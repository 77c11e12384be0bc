"""The signed task: likes/dislikes from ratings, truth from likes, both signs masked,
the negative-hit metrics, and topk behaviour left as it was."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data.dataset import Dataset
from harness.data.interactions import Interactions
from harness.signed import (DEFAULT_SIGN_OFFSET, negative_hit_rate, negative_precision,
                            signed_train_triples)

# 2 users x 5 items. Event index -> (user, item, rating); parts chosen by hand.
EVENTS = [(0, 0, 5), (0, 1, 1), (0, 2, 3), (0, 3, 2), (0, 4, 4),
          (1, 0, 2), (1, 1, 4), (1, 2, 1), (1, 3, 5)]
TRAIN, VALID, TEST = np.array([0, 1, 5, 6]), np.array([2, 7]), np.array([3, 4, 8])


def _data() -> Interactions:
    u, i, r = (np.array(c) for c in zip(*EVENTS))
    return Interactions(u, i, 2, 5, rating=r.astype(np.float32))


def _dataset(task: str = "signed", **kw) -> Dataset:
    return Dataset("hand", task, _data(), TRAIN, VALID, TEST, "x", **kw)


def _pairs(m) -> set[tuple[int, int]]:
    coo = m.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist()))


def test_signed_split_truth_is_likes_and_dislikes_are_kept():
    ds = _dataset()
    assert ds.sign_offset == DEFAULT_SIGN_OFFSET == 2.5
    assert _pairs(ds.train_matrix) == {(0, 0), (1, 1)}               # ratings 5, 4
    assert _pairs(ds.negative_matrix("train")) == {(0, 1), (1, 0)}   # ratings 1, 2
    assert _pairs(ds.matrix("valid")) == {(0, 2)}                    # 3 is a like
    assert _pairs(ds.negative_matrix("valid")) == {(1, 2)}
    assert _pairs(ds.matrix("test")) == {(0, 4), (1, 3)}
    assert _pairs(ds.negative_matrix("test")) == {(0, 3)}
    # LightGCN(pos-only) and BPR train on likes only
    users, items = ds.train_pairs()
    assert set(zip(users.tolist(), items.tolist())) == {(0, 0), (1, 1)}


def test_signed_exclusion_masks_known_items_of_both_signs():
    ds = _dataset()
    assert _pairs(ds.exclusion_matrix("valid")) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert _pairs(ds.exclusion_matrix("test")) == {(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2)}


def test_signed_train_triples_carry_offset_ratings():
    users, items, w = signed_train_triples(_dataset())
    assert users.tolist() == [0, 0, 1, 1] and items.tolist() == [0, 1, 0, 1]
    assert w.tolist() == [2.5, -1.5, -0.5, 1.5]
    users, items, w = signed_train_triples(_dataset(sign_offset=3.5))
    assert w.tolist() == [1.5, -2.5, -1.5, 0.5]


def test_custom_offset_moves_the_boundary():
    ds = _dataset(sign_offset=3.5)  # SiReN's convention: a 3 is a dislike
    assert _pairs(ds.matrix("valid")) == set()
    assert _pairs(ds.negative_matrix("valid")) == {(0, 2), (1, 2)}


def test_topk_behaviour_is_unchanged():
    ds = _dataset("topk")
    all_train = {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert _pairs(ds.train_matrix) == all_train
    assert _pairs(ds.matrix("test")) == {(0, 3), (0, 4), (1, 3)}
    assert _pairs(ds.exclusion_matrix("valid")) == all_train
    assert _pairs(ds.exclusion_matrix("test")) == all_train | {(0, 2), (1, 2)}
    assert ds.sign_offset is None
    with pytest.raises(ValueError, match="no negative"):
        ds.negative_matrix("test")


def test_bad_signed_input_is_named():
    with pytest.raises(ValueError, match="only meaningful for the 'signed' task"):
        _dataset("topk", sign_offset=3.0)
    no_rating = Interactions(np.array([0, 1]), np.array([0, 1]), 2, 2)
    with pytest.raises(ValueError, match="needs a rating column"):
        Dataset("norating", "signed", no_rating, np.array([0]), np.array([]), np.array([1]), "x")


def test_negative_hit_metrics_on_a_hand_made_example():
    ds = _dataset()
    users = np.array([0, 1])
    # test dislikes: user 0 -> item 3; user 1 -> none.
    items = torch.tensor([[2, 3, 4], [3, 2, 4]])
    valid = torch.ones(2, 3, dtype=torch.bool)
    assert negative_hit_rate(users, items, valid, ds, "test", 3).tolist() == [1.0, 0.0]
    assert negative_hit_rate(users, items, valid, ds, "test", 1).tolist() == [0.0, 0.0]
    assert negative_precision(users, items, valid, ds, "test", 3).tolist() == pytest.approx([1 / 3, 0.0])
    # a slot marked invalid (fewer rankable items than K) never counts
    valid[0, 1] = False
    assert negative_hit_rate(users, items, valid, ds, "test", 3).tolist() == [0.0, 0.0]
    # validation dislikes are user 1 -> item 2
    valid[:] = True
    assert negative_hit_rate(users, items, valid, ds, "valid", 2).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="signed"):
        negative_hit_rate(users, items, valid, _dataset("topk"), "test", 3)


class _FixedScores(torch.nn.Module):
    def __init__(self, scores):
        super().__init__()
        self.scores = torch.tensor(scores, dtype=torch.float32)

    def score(self, users):
        return self.scores[users]


def test_scorer_uses_likes_as_truth_and_reports_negative_hits(registry):
    from harness.scoring import score_ranking

    ds = _dataset()
    # user 0 ranks its disliked test item 3 first, then its liked item 4; user 1 ranks 3 first.
    model = _FixedScores([[0, 0, 0, 5, 4], [0, 0, 0, 5, 4]])
    res = score_ranking(model, ds, "test", ["recall@1", "ndcg@2", "neg_hit_rate@1", "neg_precision@2"],
                        registry.catalogue.metrics)
    assert res.metrics["recall@1"] == pytest.approx(0.5)         # user 1 hits item 3
    assert res.metrics["neg_hit_rate@1"] == pytest.approx(0.5)   # user 0 is shown item 3
    assert res.metrics["neg_precision@2"] == pytest.approx(0.25)
    users, items, _ = res.topk
    assert 0 not in items[0].tolist() and 1 not in items[0].tolist()  # known items masked


def test_prepare_dataset_reads_the_offset_from_params(registry, workdir):
    from harness.api import BenchError
    from harness.runner import prepare_dataset
    from harness.suite import DatasetEntry

    params = {"n_users": 30, "n_items": 40, "n_interactions": 400, "seed": 0}
    ds = prepare_dataset(DatasetEntry(name="synthetic", task="signed",
                                      params=dict(params, sign_offset=3.5)), "signed", registry)
    assert ds.sign_offset == 3.5
    assert ds.diagnostics["n_train_likes"] + ds.diagnostics["n_train_dislikes"] == ds.diagnostics["n_train"]
    assert ds.diagnostics["n_train_likes"] == int((ds.train.rating > 3.5).sum())
    plain = prepare_dataset(DatasetEntry(name="synthetic", task="signed", params=params),
                            "signed", registry)
    assert plain.sign_offset == 2.5 and plain.split_id == ds.split_id  # same split, other signs
    with pytest.raises(BenchError, match="sign_offset"):
        prepare_dataset(DatasetEntry(name="synthetic", params=dict(params, sign_offset=3.5)),
                        "topk", registry)
