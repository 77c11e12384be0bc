"""Contract of every negative sampler: shape, never a training positive of the user,
same seed -> same draws; DNS/MixGCF actually pick hard candidates; MixGCF needs a graph."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.context import Context
from harness.data.dataset import Dataset
from harness.data.splits import random_ratio
from harness.data.synthetic import generate
from harness.blocks.graph import LightGCN
from harness.blocks.negatives import MixedNegatives

SAMPLERS = {"uniform": {}, "popularity": {"beta": 0.75}, "dns": {"n_candidates": 8},
            "mixgcf": {"n_candidates": 8}}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    # dense users (many positives each) make a positive-leak likely if the check failed
    data = generate(n_users=40, n_items=60, n_interactions=1200, seed=3)
    train, valid, test = random_ratio(data, (0.8, 0.1, 0.1), seed=1)
    return Dataset("syn", "topk", data, train, valid, test, "t")


@pytest.fixture(scope="module")
def registry():
    from harness.registry import Registry

    return Registry()


def _ctx(registry, seed=0):
    return Context(registry=registry, seed=seed, metrics=["ndcg@10"], valid_metric="ndcg@10",
                   device=torch.device("cpu"))


def _model(dataset):
    torch.manual_seed(0)
    return LightGCN.from_dataset(dataset, dim=8, n_layers=2)


def _items(out):
    return out.items if isinstance(out, MixedNegatives) else out


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_contract(name, dataset, registry):
    users, pos = dataset.train_pairs()
    model = _model(dataset)
    draw = lambda seed: _ctx(registry, seed).sample_negatives(  # noqa: E731
        name, dict(SAMPLERS[name], n=3), users, pos, model, dataset)
    out = draw(0)
    items = _items(out)
    assert items.dtype == torch.long and items.shape[:2] == (len(users), 3)
    assert int(items.min()) >= 0 and int(items.max()) < dataset.n_items
    train = dataset.train_matrix.toarray().astype(bool)
    u = users.reshape(-1, *([1] * (items.dim() - 1))).expand_as(items)
    assert not train[u.numpy(), items.numpy()].any(), "a sampler returned a training positive"
    assert torch.equal(_items(draw(0)), items), "same seed must give the same negatives"
    assert not torch.equal(_items(draw(1)), items), "another seed should give other negatives"


def test_popularity_follows_degree(dataset, registry):
    users = torch.zeros(20000, dtype=torch.long) + 5
    out = _ctx(registry).sample_negatives("popularity", {"n": 1, "beta": 1.0}, users, users,
                                          None, dataset)
    counts = np.bincount(out.ravel().numpy(), minlength=dataset.n_items)
    deg = dataset.item_popularity()
    allowed = ~dataset.train_matrix.toarray().astype(bool)[5]
    expected = deg * allowed / (deg * allowed).sum() * len(users)
    top = np.argsort(-expected)[:5]
    assert np.allclose(counts[top], expected[top], rtol=0.15)


def test_dns_picks_the_highest_scored_candidate(dataset, registry):
    users, pos = dataset.train_pairs()
    model = _model(dataset)
    ctx_u, ctx_d = _ctx(registry), _ctx(registry)
    uni = ctx_u.sample_negatives("uniform", {"n": 1}, users, pos, model, dataset)
    dns = ctx_d.sample_negatives("dns", {"n": 1, "n_candidates": 16}, users, pos, model, dataset)
    with torch.no_grad():
        u, i = model.embeddings()
        s = lambda neg: (u[users] * i[neg.reshape(-1)]).sum(-1)  # noqa: E731
        assert s(dns).mean() > s(uni).mean() + 0.1 * s(uni).std()


def test_mixgcf_loss_backpropagates_and_mixes(dataset, registry):
    users, pos = dataset.train_pairs()
    model = _model(dataset)
    neg = _ctx(registry).sample_negatives("mixgcf", {"n": 1, "n_candidates": 8}, users[:64],
                                          pos[:64], model, dataset)
    assert isinstance(neg, MixedNegatives) and neg.items.shape == (64, 1, 3)
    assert ((neg.alpha > 0) & (neg.alpha < 1)).all()
    loss, reg = model.pairwise_loss(users[:64], pos[:64], neg)
    (loss + reg).backward()
    assert model.item.weight.grad[pos[:64]].abs().sum() > 0   # positive mixing reaches pos


def test_mixgcf_refuses_mf_at_validate_and_train_time(registry, dataset):
    from harness.suite import SuiteError, validate_suite
    from plugins.baselines.models import MF

    raw = {"suite": "s", "datasets": [{"name": "synthetic"}],
           "methods": [{"name": "bpr_mf", "params": {"sampler": "mixgcf"}}]}
    with pytest.raises(SuiteError, match="mixgcf.*graph model"):
        validate_suite(raw, registry)
    from harness.api import BenchError
    from harness.blocks.pairwise import check_sampler

    with pytest.raises(BenchError, match="layer_embeddings"):
        check_sampler("mixgcf", MF(dataset.n_users, dataset.n_items, 4), _ctx(registry))
    with pytest.raises(BenchError, match="unknown negative sampler 'dnz'"):
        check_sampler("dnz", MF(dataset.n_users, dataset.n_items, 4), _ctx(registry))


def test_bad_sampler_params_fail_validation(registry):
    from harness.suite import SuiteError, validate_suite

    raw = {"suite": "s", "datasets": [{"name": "synthetic"}],
           "methods": [{"name": "lightgcn", "params": {"sampler": "dns",
                                                       "sampler_params": {"n_candidate": 4}}}]}
    with pytest.raises(SuiteError, match="n_candidate"):
        validate_suite(raw, registry)
