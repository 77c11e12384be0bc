"""The speed paths of evaluation and negative sampling give the same answers as the slow,
obviously-correct ones: ranx through Qrels/Run, a full stable sort, a binary search."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from ranx import Qrels, Run, evaluate

from harness.blocks.negatives import PositiveSet, uniform_negatives
from harness.scoring import ranx_evaluate, topk_with_tiebreak

METRICS = ["ndcg@10", "recall@20", "recall@5", "hit_rate@10", "mrr@10", "mrr", "map@20", "precision@5"]


def _reference(users, items, valid, truth, metrics):
    """ranx.evaluate on string-id Qrels/Run dicts: the documented, slow path."""
    k = items.shape[1]
    qrels, run = {}, {}
    for row, u in enumerate(users):
        q = str(u)
        qrels[q] = {str(i): 1 for i in truth.indices[truth.indptr[u]:truth.indptr[u + 1]]}
        ranked = items[row][valid[row]].tolist()
        run[q] = {str(i): float(k - r) for r, i in enumerate(ranked)} or {"__none__": 0.0}
    run_obj = Run.from_dict(run)
    means = evaluate(Qrels.from_dict(qrels), run_obj, metrics, make_comparable=True)
    return means, {m: dict(run_obj.scores[m]) for m in metrics}


def test_ranx_fast_path_matches_ranx_evaluate_bit_for_bit():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 120, 300, 20
    truth = sp.random(n_users, n_items, density=0.03, format="csr", random_state=1)
    truth.data[:] = 1
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    # top-K lists that often contain the truth, some short, one empty
    items = np.stack([rng.permutation(n_items)[:k] for _ in users])
    for row, u in enumerate(users[:60]):
        rel = truth.indices[truth.indptr[u]:truth.indptr[u + 1]]
        items[row, rng.integers(0, k)] = rel[0]
        items[row] = np.array(list(dict.fromkeys(items[row].tolist()))
                              + [x for x in range(n_items) if x not in items[row]])[:k]
    valid = rng.random((len(users), k)) > 0.05
    valid[3] = False
    valid[5, 2:] = False
    items_t, valid_t = torch.from_numpy(items), torch.from_numpy(valid)
    means, per_user = ranx_evaluate(users, items_t, valid_t, truth, METRICS)
    ref_means, ref_per_user = _reference(users, items, valid, truth, METRICS)
    assert means["hit_rate@10"] > 0.2  # the lists do hit: not a comparison of zeros
    for m in METRICS:
        assert means[m] == ref_means[m], m
        assert per_user[m].keys() == ref_per_user[m].keys()
        assert all(per_user[m][q] == ref_per_user[m][q] for q in per_user[m]), m


def test_topk_tiebreak_equals_full_stable_sort_with_heavy_ties():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (64, 50), generator=gen).float()   # ties everywhere
    scores[:8, 5:] = -torch.inf                                      # fewer than k rankable
    scores[8:16] = torch.randn(8, 50, generator=gen)                # no ties
    for k in (1, 3, 10, 49, 50):
        vals, idx = topk_with_tiebreak(scores.clone(), k)
        ref = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
        assert torch.equal(idx, ref), k
        assert torch.equal(vals, scores.gather(1, ref)), k


def test_dense_and_sorted_key_positive_sets_agree():
    m = sp.random(40, 70, density=0.2, format="csr", random_state=3)
    dense, keys = PositiveSet(m), PositiveSet(m, dense_limit=0)
    assert dense.dense is not None and keys.dense is None
    gen = torch.Generator().manual_seed(1)
    users = torch.randint(0, 40, (500,), generator=gen)
    items = torch.randint(0, 70, (500, 3), generator=gen)
    assert torch.equal(dense.contains(users, items), keys.contains(users, items))
    assert torch.equal(dense.contains(users, items[:, 0]), keys.contains(users, items[:, 0]))
    assert dense.contains(users, items).any()
    # same draws, same negatives, never a positive
    a = uniform_negatives(dense, users, 2, torch.Generator().manual_seed(5))
    b = uniform_negatives(keys, users, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not keys.contains(users, a).any()


@pytest.mark.parametrize("shape", [(0, 5), (3, 0)])
def test_positive_set_empty_shapes(shape):
    m = sp.csr_matrix(shape, dtype=np.float32)
    ps = PositiveSet(m)
    assert ps.contains(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0,)
