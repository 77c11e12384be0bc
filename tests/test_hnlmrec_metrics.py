"""Beyond-accuracy metrics (harness/metrics_beyond.py): long-tail share, sparse-user
NDCG (averaged over sparse users only) and the false-hard-negative count."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import metrics_beyond as mb
from harness.scoring import score_ranking
from tests.hnlmrec_fixtures import tiny_dataset


def test_tail_items_are_outside_the_most_popular_fifth():
    ds = tiny_dataset()
    tail = mb.tail_items(ds)
    pop = ds.item_popularity()
    assert (~tail).sum() == round(0.2 * ds.n_items)
    assert pop[~tail].min() >= pop[tail].max()


def test_tail_share_counts_valid_slots_only():
    ds = tiny_dataset()
    tail = mb.tail_items(ds)
    head_item, tail_item = int(np.flatnonzero(~tail)[0]), int(np.flatnonzero(tail)[0])
    items = torch.tensor([[head_item, tail_item, tail_item], [head_item, head_item, tail_item]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    got = mb.tail_share(np.array([0, 1]), items, valid, ds, "test", k=3)
    assert got.tolist() == pytest.approx([2 / 3, 0.0])


def test_sparse_ndcg_is_ndcg_over_sparse_users_only():
    from harness.registry import Registry

    ds = tiny_dataset()
    sparse = mb.sparse_users(ds)
    counts = np.diff(ds.train_matrix.indptr)
    assert sparse.any() and not sparse.all()
    assert counts[sparse].max() <= counts[~sparse].min()

    class Random:
        def score(self, users):
            g = torch.Generator().manual_seed(0)
            return torch.rand(ds.n_items, generator=g).expand(len(users), -1).clone()

    metrics = Registry(autoload=False).catalogue.metrics
    res = score_ranking(Random(), ds, "test", ["ndcg@10", "sparse_ndcg@10"], metrics)
    users = [int(u) for u in res.per_user["ndcg@10"]]
    want = [res.per_user["ndcg@10"][str(u)] for u in users if sparse[u]]
    assert set(res.per_user["sparse_ndcg@10"]) == {str(u) for u in users if sparse[u]}
    assert res.metrics["sparse_ndcg@10"] == pytest.approx(np.mean(want))
    assert not np.isnan(res.metrics["sparse_ndcg@10"])


def test_held_out_positives_counts_false_negatives():
    ds = tiny_dataset()
    held = mb.HeldOutPositives(ds)
    vt = (ds.matrix("valid") + ds.matrix("test")).tocoo()
    users = torch.from_numpy(vt.row[:5].astype(np.int64))
    items = torch.from_numpy(vt.col[:5].astype(np.int64))
    train_items = torch.from_numpy(ds.train_matrix.tocoo().col[:5].astype(np.int64))
    train_users = torch.from_numpy(ds.train_matrix.tocoo().row[:5].astype(np.int64))
    assert held.count(users, items) == (5, 5)
    assert held.count(train_users, train_items) == (0, 5)  # train ∩ held-out is empty
    assert held.count(users, torch.stack([items, items], 1)) == (10, 10)
