"""Signed-task methods end to end: the degree sampler, SiReN, LightGCN(pos-only), and
the smoke suite through the runner (tiny synthetic data, a few epochs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.blocks.signed import DegreeNegativeSampler
from harness.data.dataset import Dataset
from harness.data.interactions import Interactions

ROOT = Path(__file__).resolve().parents[1]


def _signed_dataset() -> Dataset:
    # user 0 rated items 0 (like) and 1 (dislike); user 1 rated item 0 (like) and 2 (like);
    # item 3 has no training rating. Valid/test: one event each.
    u = np.array([0, 0, 1, 1, 0, 1])
    i = np.array([0, 1, 0, 2, 2, 1])
    r = np.array([5, 1, 4, 3, 5, 2], dtype=np.float32)
    return Dataset("hand", "signed", Interactions(u, i, 2, 4, rating=r),
                   np.arange(4), np.array([4]), np.array([5]), "x")


def test_degree_sampler_skips_rated_items_and_follows_degree_power():
    ds = _signed_dataset()
    sampler = DegreeNegativeSampler(ds, exponent=0.75)
    # training degrees (both signs): item0 2, item1 1, item2 1, item3 0
    np.testing.assert_allclose(sampler.probs.numpy(), np.array([2 ** 0.75, 1, 1, 0]) / (2 ** 0.75 + 2))
    users = torch.tensor([0] * 500 + [1] * 500)
    neg = sampler.sample(users, 4, torch.Generator().manual_seed(0))
    assert neg.shape == (1000, 4)
    assert set(neg[:500].unique().tolist()) == {2}      # user 0 rated 0 (like) and 1 (dislike)
    assert set(neg[500:].unique().tolist()) == {1}      # user 1 rated 0 and 2
    again = sampler.sample(users, 4, torch.Generator().manual_seed(0))
    assert torch.equal(neg, again)


def test_degree_sampler_frequencies():
    u = np.repeat(np.arange(20), 1)
    i = np.zeros(20, dtype=np.int64)  # everyone rated item 0 only...
    u = np.concatenate([u, [0, 1, 2, 3]])
    i = np.concatenate([i, [1, 1, 2, 3]])  # ...and items 1 (twice), 2, 3 by users 0-3
    r = np.full(len(u), 4.0, dtype=np.float32)
    ds = Dataset("f", "signed", Interactions(u, i, 25, 5, rating=r), np.arange(len(u)),
                 np.array([], dtype=np.int64), np.array([], dtype=np.int64), "x")
    sampler = DegreeNegativeSampler(ds, exponent=0.75)
    neg = sampler.sample(torch.arange(10, 20), 4000, torch.Generator().manual_seed(1))
    counts = np.bincount(neg.ravel().numpy(), minlength=5) / neg.numel()
    expected = np.array([0, 2 ** 0.75, 1, 1, 0]) / (2 ** 0.75 + 2)  # item 0 rated by all; 4 unrated
    np.testing.assert_allclose(counts, expected, atol=0.01)


def test_siren_fuses_two_views_with_attention_and_sign_aware_bpr():
    from plugins.siren.model import SiReN

    ds = _signed_dataset()
    model = SiReN.from_dataset(ds, dim=8, n_layers=2)
    # the graph encoder sees likes only: 3 liked training events -> 6 adjacency entries
    assert model.gnn.adj._nnz() == 6
    model.eval()
    z = model.fused()
    u, i = model.gnn.embeddings()
    views = torch.stack([torch.cat([u, i]), model.mlp(model.neg_ego.weight)], 1)
    attn = torch.softmax(model.att(views), 1)
    assert torch.allclose(attn.sum(1), torch.ones(len(z), 1))
    assert torch.allclose(z, (attn * views).sum(1), atol=1e-6)
    terms = model.signed_loss(torch.tensor([0, 0]), torch.tensor([0, 1]),
                              torch.tensor([2.5, -1.5]), torch.tensor([[3], [3]]))
    assert set(terms) == {"bpr", "reg"} and all(torch.isfinite(t) for t in terms.values())


@pytest.mark.parametrize("sign, direction", [(1.0, -1), (-1.0, 1)])
def test_sign_aware_bpr_direction(sign, direction):
    from plugins.siren.model import sign_aware_bpr

    pos = torch.zeros(1, requires_grad=True)
    neg = torch.zeros(1, 3, requires_grad=True)
    sign_aware_bpr(pos, neg, torch.tensor([sign])).backward()
    # a like's score is pushed up (negative gradient), a dislike's down, past unobserved items
    assert direction * pos.grad.item() > 0 and direction * neg.grad.sum().item() < 0


def test_lightgcn_on_the_signed_task_trains_on_likes_only(registry):
    from harness.blocks.graph import LightGCN

    ds = _signed_dataset()
    model = LightGCN.from_dataset(ds, dim=4, n_layers=2)
    # 3 liked training events (u0-i0, u1-i0, u1-i2), symmetric -> 6 entries; dislike u0-i1 absent
    dense = model.adj.to_dense()
    assert model.adj._nnz() == 6 and dense[0, 2 + 1] == 0


def test_signed_smoke_suite_runs_and_is_deterministic(registry, workdir):
    from harness.runner import run_suite
    from harness.suite import load_suite

    suite, cells = load_suite(ROOT / "suites/signed-smoke.yaml", registry)
    keep = {"lsgrec", "siren", "lightgcn"}
    cells = [c for c in cells if c.method.key in keep]
    results = run_suite(suite, cells, registry, tracking_uri=f"sqlite:///{workdir}/a.db",
                        cache_dir=workdir / ".cache")
    assert [r.status for r in results] == ["finished"] * 3, [r.error for r in results]
    for r in results:
        assert 0 <= r.metrics["neg_hit_rate@20"] <= 1 and r.metrics["seconds_per_epoch"] > 0
    lsgrec = [c for c in cells if c.method.key == "lsgrec"]
    again = run_suite(suite, lsgrec, registry, force=True, tracking_uri=f"sqlite:///{workdir}/b.db",
                      cache_dir=workdir / ".cache")
    first = next(r for r in results if r.cell.method.key == "lsgrec")
    for m in ("ndcg@20", "recall@20", "neg_hit_rate@20"):
        assert again[0].metrics[m] == pytest.approx(first.metrics[m], abs=1e-9)


def test_signed_suites_validate(registry):
    from harness.suite import load_suite

    for name in ("signed.yaml", "signed-smoke.yaml"):
        suite, cells = load_suite(ROOT / "suites" / name, registry)
        assert {c.task for c in cells} == {"signed"}
        assert len(suite.seeds) >= (3 if name == "signed.yaml" else 1)


def test_lightgcn_can_share_lsgrec_degree_sampler(registry):
    """The `degree` sampler is LSGRec's DegreeNegativeSampler behind the sampling hook, so
    a LightGCN(pos-only) control differs from LSGRec in the model, not in its negatives."""
    from harness.context import Context

    ds = _signed_dataset()
    ctx = Context(registry=registry, seed=0, metrics=["ndcg@10"], valid_metric="ndcg@10")
    users = torch.tensor([0] * 300 + [1] * 300)
    neg = ctx.sample_negatives("degree", {"n": 2, "exponent": 0.75}, users, users, None, ds)
    assert neg.shape == (600, 2)
    assert set(neg[:300].unique().tolist()) == {2} and set(neg[300:].unique().tolist()) == {1}
    direct = DegreeNegativeSampler(ds, 0.75).sample(users, 2, torch.Generator().manual_seed(0))
    again = Context(registry=registry, seed=0, metrics=["ndcg@10"], valid_metric="ndcg@10")
    assert torch.equal(again.sample_negatives("degree", {"n": 2}, users, users, None, ds), neg)
    assert direct.shape == neg.shape
