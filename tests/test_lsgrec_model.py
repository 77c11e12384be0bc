"""LSGRec: signed graph construction, the light signed convolution against a hand
computation, and the direction of every loss term."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.blocks.graph import signed_adjacency
from harness.blocks.signed import sampled_scores
from plugins.lsgrec import losses
from plugins.lsgrec.model import LightSignedGCN

# 2 users, 3 items. Likes: u0-i0, u0-i1, u1-i1. Dislikes: u0-i2, u1-i0.
USERS = np.array([0, 0, 1, 0, 1])
ITEMS = np.array([0, 1, 1, 2, 0])
LIKE = np.array([True, True, True, False, False])
# Nodes: u0, u1, i0, i1, i2 (items shifted by 2). Likes degrees: u0 2, u1 1, i0 1, i1 2, i2 0.
r2 = 1 / math.sqrt(2)
A_POS = np.array([[0, 0, r2, 0.5, 0], [0, 0, 0, r2, 0], [r2, 0, 0, 0, 0],
                  [0.5, r2, 0, 0, 0], [0, 0, 0, 0, 0]])
# Dislike degrees: u0 1, u1 1, i0 1, i1 0, i2 1.
A_NEG = np.array([[0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 1, 0, 0, 0],
                  [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=float)


def _model(dim: int = 1, n_layers: int = 2, **kw) -> LightSignedGCN:
    adj_pos, adj_neg = signed_adjacency(2, 3, USERS, ITEMS, LIKE)
    return LightSignedGCN(2, 3, dim, n_layers, adj_pos, adj_neg, **kw)


def test_signed_adjacency_edge_sets_and_per_sign_normalisation():
    adj_pos, adj_neg = signed_adjacency(2, 3, USERS, ITEMS, LIKE)
    np.testing.assert_allclose(adj_pos.to_dense().numpy(), A_POS, atol=1e-6)
    np.testing.assert_allclose(adj_neg.to_dense().numpy(), A_NEG, atol=1e-6)
    # the dislike u0-i2 is no positive edge and the like u0-i0 no negative edge
    assert adj_pos.to_dense()[0, 4] == 0 and adj_neg.to_dense()[0, 2] == 0


def _set_weights(model, e, e_neg):
    with torch.no_grad():
        model.user.weight.copy_(torch.tensor(e[:2]).reshape(2, -1))
        model.item.weight.copy_(torch.tensor(e[2:]).reshape(3, -1))
        model.user_neg.weight.copy_(torch.tensor(e_neg[:2]).reshape(2, -1))
        model.item_neg.weight.copy_(torch.tensor(e_neg[2:]).reshape(3, -1))


def test_forward_matches_hand_computation():
    e = np.array([1.0, 2.0, 3.0, 4.0, 5.0])       # E: u0 u1 i0 i1 i2 (d = 1)
    e_neg = np.array([0.5, -1.0, 2.0, 0.0, 1.0])  # E⁻₀
    model = _model()
    _set_weights(model, e, e_neg)
    model.eval()
    z_pos, z_neg = (z.detach().numpy().ravel() for z in model.signed_embeddings())
    p1 = A_POS @ e
    p2 = A_POS @ p1
    n1 = A_NEG @ e                       # first-order dislikes propagate E, not E⁻₀
    n2 = A_POS @ n1                      # higher order along likes
    np.testing.assert_allclose(z_pos, (e + p1 + p2) / 3, rtol=1e-5)
    np.testing.assert_allclose(z_neg, (e_neg + n1 + n2) / 3, rtol=1e-5)
    # one entry by hand: u1 = (2 + r2·4 + r2·(0.5·1 + r2·2)) / 3
    assert z_pos[1] == pytest.approx((2 + r2 * 4 + r2 * (0.5 + r2 * 2)) / 3, rel=1e-5)
    # u0's negative view: E⁻₀ 0.5, N1 = E(i2) = 5, N2 = r2·N1(i0) + 0.5·N1(i1) = r2·2
    assert z_neg[0] == pytest.approx((0.5 + 5 + r2 * 2) / 3, rel=1e-5)
    # ranking uses the positive view only
    scores = model.score(torch.tensor([0, 1])).detach().numpy()
    np.testing.assert_allclose(scores, np.outer(z_pos[:2], z_pos[2:]), rtol=1e-5)


def test_ablation_without_high_order_negatives():
    e = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    e_neg = np.array([0.5, -1.0, 2.0, 0.0, 1.0])
    model = _model(high_order_negatives=False)
    _set_weights(model, e, e_neg)
    model.eval()
    z_pos, z_neg = (z.detach().numpy().ravel() for z in model.signed_embeddings())
    np.testing.assert_allclose(z_neg, (e_neg + A_NEG @ e) / 3, rtol=1e-5)
    full = _model()
    _set_weights(full, e, e_neg)
    full.eval()
    np.testing.assert_allclose(z_pos, full.signed_embeddings()[0].detach().numpy().ravel(), rtol=1e-6)


def _grad(fn, *tensors):
    ts = [torch.tensor(t, dtype=torch.float32, requires_grad=True) for t in tensors]
    fn(*ts).backward()
    return [t.grad for t in ts]


def test_positive_bpr_pushes_rated_items_above_unobserved_ones():
    like, dislike = torch.tensor([1.0]), torch.tensor([-1.0])
    g_pos, g_neg = _grad(lambda p, n: losses.positive_bpr(p, n, like), [0.0], [[0.0, 0.0]])
    assert g_pos.item() < 0 and (g_neg > 0).all()   # descent raises ⟨u,i⟩, lowers ⟨u,j⟩
    g_pos_d, _ = _grad(lambda p, n: losses.positive_bpr(p, n, dislike), [0.0], [[0.0, 0.0]])
    assert g_pos_d.item() == pytest.approx(2 * g_pos.item())  # c⁺ = 2 for a dislike
    # value: K = 2 terms of −log σ(0) each
    assert losses.positive_bpr(torch.zeros(1), torch.zeros(1, 2), like).item() == pytest.approx(2 * math.log(2))


def test_negative_bpr_pushes_rated_items_below_unobserved_ones_in_negative_space():
    like, dislike = torch.tensor([1.0]), torch.tensor([-1.0])
    g_pos, g_neg = _grad(lambda p, n: losses.negative_bpr(p, n, like), [0.0], [[0.0]])
    assert g_pos.item() > 0 and g_neg.item() < 0
    g_pos_d, _ = _grad(lambda p, n: losses.negative_bpr(p, n, dislike), [0.0], [[0.0]])
    assert g_pos.item() == pytest.approx(2 * g_pos_d.item())  # c⁻ = 2 for a like, 1 for a dislike


def test_rating_mse_and_the_code_faithful_broadcast():
    (g,) = _grad(lambda p: losses.rating_mse(p, torch.tensor([1.0, -1.0])), [[2.0], [-1.0]])
    assert g[0, 0] > 0 and g[1, 0] == 0            # too high -> pushed down; exact -> no push
    pred, w = torch.tensor([[2.0], [-1.0]]), torch.tensor([1.0, -1.0])
    assert losses.rating_mse(pred, w).item() == pytest.approx(0.5)
    # the code's [B]-vs-[B,1] broadcast compares every prediction with every label
    expected = np.mean([(p - t) ** 2 for p in (2.0, -1.0) for t in (1.0, -1.0)])
    assert losses.rating_mse(pred, w, code_faithful=True).item() == pytest.approx(expected)


def test_cross_loss_decorrelates_views():
    zero = losses.cross_decorrelation(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]),
                                      torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]]))
    assert zero.item() == 0
    up, un = torch.tensor([[1.0, 1.0]], requires_grad=True), torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = losses.cross_decorrelation(up, un, torch.zeros(1, 2), torch.zeros(1, 2))
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    with torch.no_grad():
        stepped = ((up - 0.1 * up.grad) * (un - 0.1 * un.grad)).sum().abs()
    assert stepped < 1.0


def test_sampled_scores_and_l2():
    zu = torch.tensor([[1.0, 2.0]])
    zi = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    pos, neg, l2 = sampled_scores(zu, zi, torch.tensor([0]), torch.tensor([[1, 2]]))
    assert pos.tolist() == [1.0] and neg.tolist() == [[2.0, 6.0]]
    assert l2.item() == pytest.approx((5 + 1 + 1 + 8) / 2)


def test_loss_terms_and_weights():
    model = _model(dim=4)
    u, i, w = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2.5, -1.5])
    neg = torch.tensor([[2, 2], [2, 0]])
    terms = model.signed_loss(u, i, w, neg)
    assert set(terms) == {"pos", "neg", "reg", "rating", "cross"}
    assert all(torch.isfinite(t) for t in terms.values())
    no_neg = _model(dim=4, w_neg=0.0, w_rating=0.0, w_cross=0.0)
    assert set(no_neg.signed_loss(u, i, w, neg)) == {"pos", "reg"}
    # negative-space loss reaches E through N₁ = Â⁻E
    model.zero_grad()
    model.signed_loss(u, i, w, neg)["neg"].backward()
    assert model.user.weight.grad.abs().sum() > 0 and model.user_neg.weight.grad.abs().sum() > 0
