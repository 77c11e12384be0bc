"""Negatives HNLMRec trains with are never training positives: the semantic negative's
item (nearest non-positive) and the sampled item it is mixed into, through a real run."""
from __future__ import annotations

import torch

from harness.blocks.negatives import PositiveSet
from plugins.hnlmrec.semantic import nearest_non_positive
from tests.hnlmrec_fixtures import tiny_dataset


def test_nearest_non_positive_skips_training_positives():
    ds = tiny_dataset()
    positives = ds.positive_set
    users, _ = ds.train_pairs()
    g = torch.Generator().manual_seed(0)
    item_vectors = torch.randn(ds.n_items, 8, generator=g)
    # aim every semantic negative exactly at one of the user's own positives
    _, items = ds.train_pairs()
    vectors = item_vectors[items] + 0.01 * torch.randn(len(items), 8, generator=g)
    out = nearest_non_positive(vectors, users, item_vectors, positives, top=4)
    assert not positives.contains(users, out).any()
    assert (out >= 0).all() and (out < ds.n_items).all()


def test_full_scan_when_every_top_item_is_positive():
    import scipy.sparse as sp

    m = sp.csr_matrix(torch.tensor([[1, 1, 1, 0, 1]], dtype=torch.float32).numpy())
    positives = PositiveSet(m)
    item_vectors = torch.eye(5)
    out = nearest_non_positive(torch.tensor([[1.0, 0.5, 0.2, 0.0, 0.1]]), torch.tensor([0]),
                               item_vectors, positives, top=2)
    assert out.tolist() == [3]


def test_training_negatives_of_a_real_run_are_never_training_positives(tmp_path, monkeypatch):
    from harness.registry import Registry
    from plugins import hnlmrec
    from plugins.hnlmrec.model import HNLMRecModel
    from tests.hnlmrec_fixtures import TINY, ctx

    seen = []
    original = HNLMRecModel.pairwise_loss

    def spy(self, users, pos, neg):
        seen.append((users.clone(), neg.clone()))
        return original(self, users, pos, neg)

    monkeypatch.setattr(HNLMRecModel, "pairwise_loss", spy)
    ds = tiny_dataset()
    registry = Registry()
    for sampler, sp in (("uniform", {}), ("dns", {"n_candidates": 4})):
        model = hnlmrec.bench_train("hnlmrec", dict(TINY, route="A", sampler=sampler,
                                                    sampler_params=sp),
                                    ds, ctx(registry, tmp_path))
        assert model.history["false_neg_rate"] >= 0
        assert 0 <= model.history["semantic_score_above_sampled"] <= 1
    assert seen
    for users, neg in seen:
        assert not ds.positive_set.contains(users, neg).any()
