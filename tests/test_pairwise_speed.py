"""The pairwise loop's fast paths against the plain autograd code they replace.

Bit for bit: row gathers through ``index_select``, the fused LightGCN propagation + mean
readout, per-epoch permutation of the training pairs, the skipped unused L2 term, the
per-epoch false-negative count, re-testing only redrawn negatives, and a whole LightGCN
training run against a reference loop written the straightforward way (nn.Embedding
lookups, ``stack().mean()``, one index per batch). To float rounding: BPR-MF's fused
loss node (``_BPRStep``) and so a whole BPR-MF run. Same seed, same numbers: two runs
are identical. No timings here: speed is measured by benchmarks/recbole_parity."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.blocks.graph import (LightGCN, mean_readout, normalized_adjacency, propagate,
                                  propagate_mean)
from harness.blocks.mf import MF
from harness.blocks.pairwise import PairwiseParams, embedding_l2, gather_rows, train_pairwise
from harness.context import Context
from harness.data.dataset import Dataset
from harness.data.splits import random_ratio
from harness.data.synthetic import generate
from harness.metrics_beyond import HeldOutPositives
from harness.training import fused_adam, minibatch_epoch


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    data = generate(n_users=40, n_items=60, n_interactions=1200, seed=3)
    return Dataset("syn", "topk", data, *random_ratio(data, (0.8, 0.1, 0.1), seed=1), "t")


@pytest.fixture(scope="module")
def registry():
    from harness.registry import Registry

    return Registry()


def _ctx(registry, seed=0) -> Context:
    ctx = Context(registry=registry, seed=seed, metrics=["ndcg@10"], valid_metric="ndcg@10",
                  device=torch.device("cpu"))
    calls = iter(range(10_000))
    ctx.validate = lambda model, dataset: float(next(calls))  # always improving: last epoch kept
    return ctx


@pytest.mark.parametrize("shape", [(37,), (37, 3)])
def test_gather_rows_matches_embedding_values_and_gradient(shape):
    torch.manual_seed(0)
    table = torch.randn(50, 8, requires_grad=True)
    index = torch.randint(50, shape)  # with repeats: the gradient must sum them in order
    upstream = torch.randn(*shape, 8)
    fast = gather_rows(table, index)
    (fast * upstream).sum().backward()
    fast_grad, table.grad = table.grad.clone(), None
    plain = F.embedding(index, table)
    (plain * upstream).sum().backward()
    assert torch.equal(fast, plain)
    assert torch.equal(fast_grad, table.grad)


@pytest.mark.parametrize("n_layers", [0, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("dim", [8, 64, 6])
def test_fused_propagation_matches_layers_then_mean(n_layers, dim, dataset):
    coo = dataset.train_matrix.tocoo()
    adj = normalized_adjacency(dataset.n_users, dataset.n_items, coo.row, coo.col)
    torch.manual_seed(1)
    ego = torch.randn(dataset.n_users + dataset.n_items, dim)
    upstream = torch.randn_like(ego)
    outs = []
    for fn in (lambda x: propagate_mean(adj, x, n_layers),
               lambda x: mean_readout(propagate(adj, x, n_layers))):
        leaf = ego.clone().requires_grad_(True)
        out = fn(leaf)
        (out * upstream).sum().backward()
        outs.append((out.detach(), leaf.grad))
    assert torch.equal(outs[0][1], outs[1][1])  # backward: the same two-term sums, always
    if dim % 8 == 0 or n_layers <= 3:  # every shipped suite: dims 8-64, 2-3 layers
        assert torch.equal(outs[0][0], outs[1][0])
    else:  # torch's stacked sum then adds 5+ rows in another order: last bits only
        assert torch.allclose(outs[0][0], outs[1][0], rtol=1e-6, atol=1e-7)


def test_minibatch_epoch_columns_equal_indices():
    torch.manual_seed(0)
    a, b = torch.randint(100, (103,)), torch.randn(103)
    seen: dict[str, list] = {"idx": [], "col": []}

    class NoOpt:
        def zero_grad(self):
            pass

        def step(self):
            pass

    def loss_of(x, y):
        return (x.float() * y).sum().requires_grad_(True)

    def by_index(idx):
        seen["idx"].append((a[idx], b[idx]))
        return loss_of(a[idx], b[idx])

    def by_column(x, y):
        seen["col"].append((x, y))
        return loss_of(x, y)

    one = minibatch_epoch(103, 10, torch.Generator().manual_seed(5), NoOpt(), by_index)
    two = minibatch_epoch(103, 10, torch.Generator().manual_seed(5), NoOpt(), by_column,
                          columns=(a, b))
    assert one == two and len(seen["idx"]) == len(seen["col"]) == 11
    for (x1, y1), (x2, y2) in zip(seen["idx"], seen["col"]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.parametrize("kind", ["mf", "lightgcn"])
def test_skipped_l2_leaves_the_ranking_loss_unchanged(kind, dataset):
    torch.manual_seed(0)
    model = (MF(dataset.n_users, dataset.n_items, 8) if kind == "mf"
             else LightGCN.from_dataset(dataset, dim=8, n_layers=2))
    users, pos = dataset.train_pairs()
    neg = torch.randint(dataset.n_items, (len(users),))
    full, reg = model.pairwise_loss(users, pos, neg)
    bare, none = model.pairwise_loss(users, pos, neg, with_reg=False)
    assert none is None and reg > 0 and torch.equal(full, bare)


def test_per_epoch_false_negative_count_equals_per_batch(dataset):
    held = HeldOutPositives(dataset)
    users, _ = dataset.train_pairs()
    g = torch.Generator().manual_seed(0)
    batches = [(users[s:s + 50], torch.randint(dataset.n_items, (len(users[s:s + 50]),), generator=g))
               for s in range(0, len(users), 50)]
    per_batch = [held.count(u, n) for u, n in batches]
    expected = (sum(c[0] for c in per_batch), sum(c[1] for c in per_batch))
    assert expected[0] > 0  # the data has held-out positives to find
    assert held.count_batches(batches) == expected


# --- a whole run against the loop written the plain way ---------------------------------

def _reference_loss(model, users, pos, neg):
    """The pairwise losses as they were written before the fast paths (the L2 term after
    the ranking loss, as before: the order decides how autograd sums a row's gradients)."""
    from harness.blocks.pairwise import ranking_loss

    if isinstance(model, LightGCN):
        final = mean_readout(propagate(model.adj, model.ego(), model.n_layers))
        u_all, i_all = final[:model.n_users], final[model.n_users:]
        u, p, n = u_all[users], i_all[pos], i_all[neg]
        return (ranking_loss((u * p).sum(-1), (u * n).sum(-1)),
                embedding_l2(model.user(users), model.item(pos), model.item(neg)))
    u, p, n = model.user(users), model.item(pos), model.item(neg)
    return ranking_loss((u * p).sum(-1), (u * n).sum(-1)), embedding_l2(u, p, n)


def _reference_training(model, dataset, ctx, p: PairwiseParams) -> None:
    users, items = dataset.train_pairs()
    opt = fused_adam(model.parameters(), lr=p.lr)
    rng = ctx.rng("train.order")
    for _ in range(p.epochs):
        model.train()
        order = torch.randperm(len(users), generator=rng)
        for start in range(0, len(users), p.batch_size):
            idx = order[start:start + p.batch_size]
            u, pos = users[idx], items[idx]
            neg = ctx.sample_negatives(p.sampler, dict(p.sampler_params, n=1), u, pos, model,
                                       dataset)[:, 0]
            loss, reg = _reference_loss(model, u, pos, neg)
            if p.reg_weight:
                loss = loss + p.reg_weight * reg
            opt.zero_grad()
            loss.backward()
            opt.step()


def _build(kind, dataset):
    torch.manual_seed(0)
    return (MF(dataset.n_users, dataset.n_items, 8) if kind == "mf"
            else LightGCN.from_dataset(dataset, dim=8, n_layers=2))


@pytest.mark.parametrize("kind,reg_weight", [("mf", 0.0), ("mf", 1e-3), ("lightgcn", 1e-3)])
def test_training_run_equals_the_plain_loop(kind, reg_weight, dataset, registry):
    """LightGCN: bit for bit. BPR-MF: its fused loss node rounds differently, so to 1e-5
    after 3 epochs (the same negatives are drawn: sampling does not read the weights)."""
    p = PairwiseParams(dim=8, epochs=3, batch_size=64, lr=0.01, reg_weight=reg_weight, patience=5)
    fast, plain = _build(kind, dataset), _build(kind, dataset)
    history = train_pairwise(fast, dataset, _ctx(registry), p)
    _reference_training(plain, dataset, _ctx(registry), p)
    assert history["epochs_run"] == 3 and history["best_epoch"] == 2
    for (name, a), (_, b) in zip(fast.state_dict().items(), plain.state_dict().items()):
        if kind == "lightgcn":
            assert torch.equal(a, b), name
        else:
            assert torch.allclose(a, b, rtol=0, atol=1e-5), name
            assert not torch.equal(a, b), "expected the fused node's rounding to show"


@pytest.mark.parametrize("kind", ["mf", "lightgcn"])
def test_same_seed_same_numbers(kind, dataset, registry):
    p = PairwiseParams(dim=8, epochs=2, batch_size=64, lr=0.01, reg_weight=1e-3, patience=5)
    one, two = _build(kind, dataset), _build(kind, dataset)
    train_pairwise(one, dataset, _ctx(registry), p)
    train_pairwise(two, dataset, _ctx(registry), p)
    for a, b in zip(one.state_dict().values(), two.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("reg", [False, True])
def test_fused_bpr_step_matches_autograd(reg, dataset):
    from harness.blocks.pairwise import ranking_loss

    model = _build("mf", dataset)
    users = torch.randint(dataset.n_users, (300,), generator=torch.Generator().manual_seed(1))
    pos = torch.randint(dataset.n_items, (300,), generator=torch.Generator().manual_seed(2))
    neg = torch.randint(dataset.n_items, (300,), generator=torch.Generator().manual_seed(3))
    results = []
    for fused in (True, False):
        model.zero_grad()
        if fused:
            loss, l2 = model.pairwise_loss(users, pos, neg, with_reg=reg)
        else:
            u, p, n = model.user(users), model.item(pos), model.item(neg)
            loss, l2 = ranking_loss((u * p).sum(-1), (u * n).sum(-1)), embedding_l2(u, p, n)
        total = loss + 0.1 * l2 if reg else loss
        total.backward()
        results.append((loss.detach(), l2.detach() if reg else None,
                        model.user.weight.grad.clone(), model.item.weight.grad.clone()))
    (f_loss, f_l2, f_gu, f_gi), (p_loss, p_l2, p_gu, p_gi) = results
    assert torch.allclose(f_loss, p_loss, rtol=1e-6, atol=0)
    if reg:
        assert torch.allclose(f_l2, p_l2, rtol=1e-6, atol=0)
    assert torch.allclose(f_gu, p_gu, rtol=1e-5, atol=1e-8)
    assert torch.allclose(f_gi, p_gi, rtol=1e-5, atol=1e-8)
    assert f_gu.abs().sum() > 0 and f_gi.abs().sum() > 0


def test_fused_bpr_step_is_not_taken_where_it_does_not_apply(dataset):
    """Hinge loss, several negatives per pair and no-grad calls keep the autograd path."""
    model = _build("mf", dataset)
    users, pos = dataset.train_pairs()
    two = torch.randint(dataset.n_items, (len(users), 2))
    loss, reg = model.pairwise_loss(users, pos, two)
    assert loss.grad_fn is not None and "BPRStep" not in type(loss.grad_fn).__name__
    model.loss_kind = "hinge"
    loss, _ = model.pairwise_loss(users, pos, two[:, 0])
    assert "BPRStep" not in type(loss.grad_fn).__name__
    model.loss_kind = "bpr"
    with torch.no_grad():
        loss, _ = model.pairwise_loss(users, pos, two[:, 0])
    assert torch.isfinite(loss)


def _full_rescan_resample(positives, users, items, draw, max_rounds=100):
    """The resampling loop as it was: re-test the whole batch every round."""
    items = items.clone()
    for _ in range(max_rounds):
        bad = positives.contains(users, items)
        if not bad.any():
            return items
        items[bad] = draw(int(bad.sum()))
    raise RuntimeError("could not draw negatives")


@pytest.mark.parametrize("n", [1, 3])
def test_resample_draws_what_a_full_rescan_draws(n, dataset):
    """Re-testing only the redrawn slots gives the same negatives from the same stream, and
    never a training positive (dense users: several rounds are needed)."""
    positives = dataset.positive_set
    users = dataset.train_pairs()[0].repeat(3)
    outs = []
    for resample in (positives.resample, lambda *a: _full_rescan_resample(positives, *a)):
        g = torch.Generator().manual_seed(7)
        draw = lambda size: torch.randint(dataset.n_items, (size,), generator=g)  # noqa: E731
        first = draw(len(users) * n).reshape(len(users), n)
        assert positives.contains(users, first).sum() > 10  # the test exercises resampling
        outs.append((resample(users, first, draw), torch.randint(1 << 30, (1,), generator=g)))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1], outs[1][1])  # the stream is left where the old loop left it
    assert not positives.contains(users, outs[0][0]).any()
