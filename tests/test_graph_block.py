"""The graph block's symmetric fast path: the builders really produce symmetric matrices,
and the CSR product gives the same values and gradients as ``torch.sparse.mm``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.blocks.graph import (LightGCN, mark_symmetric, normalized_adjacency, propagate,
                                  signed_adjacency, spmm, _SYMMETRIC_CSR)

RNG = np.random.default_rng(3)
USERS, ITEMS = RNG.integers(0, 12, 80), RNG.integers(0, 20, 80)


def _assert_symmetric(adj: torch.Tensor) -> None:
    dense = adj.to_dense()
    assert torch.allclose(dense, dense.T, rtol=1e-6, atol=0)


def test_builders_are_symmetric_and_marked():
    adj = normalized_adjacency(12, 20, USERS, ITEMS)
    _assert_symmetric(adj)
    assert adj in _SYMMETRIC_CSR
    like = RNG.random(80) < 0.6
    for part in signed_adjacency(12, 20, USERS, ITEMS, like):
        _assert_symmetric(part)
        assert part in _SYMMETRIC_CSR


def test_fast_path_matches_sparse_mm_values_and_gradients():
    adj = normalized_adjacency(12, 20, USERS, ITEMS)
    plain = torch.sparse_coo_tensor(adj.indices(), adj.values(), adj.shape,
                                    check_invariants=True).coalesce()
    assert plain not in _SYMMETRIC_CSR  # an unmarked copy takes torch.sparse.mm
    x = torch.randn(32, 5, dtype=torch.float32)
    weights = torch.randn(32, 5)
    grads = []
    for a in (adj, plain):
        leaf = x.clone().requires_grad_(True)
        layers = propagate(a, leaf, 3)
        (torch.stack(layers).mean(0) * weights).sum().backward()
        grads.append((torch.stack(layers).detach(), leaf.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


def test_adjacency_with_gradient_does_not_take_the_fast_path():
    adj = normalized_adjacency(12, 20, USERS, ITEMS)
    vals = adj.values().clone().requires_grad_(True)
    learnable = torch.sparse_coo_tensor(adj.indices(), vals, adj.shape, is_coalesced=True,
                                        check_invariants=True)
    mark_symmetric(learnable)
    spmm(learnable, torch.randn(32, 3)).sum().backward()
    assert vals.grad is not None and vals.grad.abs().sum() > 0


def test_mark_symmetric_refuses_non_square():
    rect = torch.sparse_coo_tensor(torch.tensor([[0], [1]]), torch.tensor([1.0]), (2, 3),
                                   check_invariants=True)
    with pytest.raises(ValueError, match="square"):
        mark_symmetric(rect)


def test_drgnn_reweighted_adjacency_stays_symmetric():
    from plugins.drgnn import DRGNN

    torch.manual_seed(0)
    adj = normalized_adjacency(12, 20, USERS, ITEMS)
    model = DRGNN(12, 20, 4, 2, adj, alpha=0.1)
    w = model.edge_weights()
    reweighted = torch.sparse_coo_tensor(adj.indices(), adj.values() * w, adj.shape,
                                         check_invariants=True).coalesce()
    _assert_symmetric(reweighted)


def test_lightgcn_training_step_is_deterministic():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = LightGCN(12, 20, 8, 3, normalized_adjacency(12, 20, USERS, ITEMS))
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(3):
            bpr, reg = model.pairwise_loss(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]),
                                           torch.tensor([6, 7, 8]))
            opt.zero_grad()
            (bpr + 1e-4 * reg).backward()
            opt.step()
        losses.append(float(bpr.detach()))
    assert losses[0] == losses[1]
