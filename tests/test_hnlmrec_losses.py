"""HNLMRec's losses on hand-made vectors: the route-B pairwise contrastive loss and the
CF stage's mixing, hinge and semantic InfoNCE."""
from __future__ import annotations

import math

import pytest
import torch

from harness.blocks.mf import MF
from plugins.hnlmrec.encoder import pairwise_contrastive_loss
from plugins.hnlmrec.model import HNLMRecModel
from plugins.hnlmrec.params import HNLMRecParams
from plugins.hnlmrec.semantic import SemanticNegatives

logsig = lambda x: math.log(1 / (1 + math.exp(-x)))  # noqa: E731


def test_contrastive_loss_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[3.0, 0.0], [1.0, 1.0]])     # cos: 1, 1/√2
    n = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])    # cos(q0,·): 0, -1 ; cos(q1,·): 1, 0
    tau = 0.5
    s_pos = [1 / tau, (1 / math.sqrt(2)) / tau]
    s_neg = [[0 / tau, -1 / tau], [1 / tau, 0 / tau]]
    want = -sum(logsig(s_pos[b] - s_neg[b][c]) for b in range(2) for c in range(2)) / 4
    got = pairwise_contrastive_loss(q, p, n, tau)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_contrastive_loss_prefers_query_near_its_target():
    q = torch.tensor([[1.0, 0.0]])
    near, far = torch.tensor([[1.0, 0.1]]), torch.tensor([[-1.0, 0.0]])
    assert pairwise_contrastive_loss(q, near, far) < pairwise_contrastive_loss(q, far, near)


def _model(alpha, loss="hinge", cl_weight=0.0, official=False, objective="loss"):
    mf = MF(1, 3, 2)
    with torch.no_grad():
        mf.user.weight.copy_(torch.tensor([[1.0, 0.0]]))
        mf.item.weight.copy_(torch.tensor([[2.0, 0.0], [0.5, 0.0], [0.0, 1.0]]))
    sem = SemanticNegatives(vectors=torch.tensor([[1.0, 1.0]]), pair_keys=torch.tensor([0]),
                            pair_slot=torch.tensor([0]), item_vectors=torch.zeros(3, 2),
                            slot_users=torch.tensor([0]))
    p = HNLMRecParams(dim=2, alpha=alpha, loss=loss, cl_weight=cl_weight, margin=0.3,
                      adapter_hidden=2, official_code=official, adapter_objective=objective)
    model = HNLMRecModel(mf, sem, p)
    # make the adapter a fixed map: h = [3, 0] whatever the input
    with torch.no_grad():
        for layer in model.adapter:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        model.adapter[2].bias.copy_(torch.tensor([3.0, 0.0]))
    return model


U, P, N = torch.tensor([0]), torch.tensor([0]), torch.tensor([1])


def test_alpha_zero_is_the_plain_hinge_on_the_sampled_negative():
    loss, reg = _model(0.0).pairwise_loss(U, P, N)
    # e_u·e_i = 2, e_u·e_j = 0.5: max(0, 0.5 - 2 + 0.3) = 0
    assert loss.item() == pytest.approx(0.0)
    assert reg.item() == pytest.approx((1 + 4 + 0.25) / 2)


def test_mixing_moves_the_negative_towards_the_semantic_one():
    loss, _ = _model(0.5).pairwise_loss(U, P, N)
    # ẽ_j = 0.5·[3,0] + 0.5·[0.5,0] = [1.75, 0]: max(0, 1.75 - 2 + 0.3) = 0.05
    assert loss.item() == pytest.approx(0.05, abs=1e-6)
    bpr, _ = _model(0.5, loss="bpr").pairwise_loss(U, P, N)
    assert bpr.item() == pytest.approx(-logsig(2 - 1.75), rel=1e-6)


def test_semantic_infonce_term():
    tau = 0.2
    loss, _ = _model(0.0, cl_weight=1.0).pairwise_loss(U, P, N)
    a, b = 1.0 / tau, 1.0 / tau  # cos(u, i) = 1, cos(u, h) = 1
    want = -math.log(math.exp(a) / (math.exp(a) + math.exp(b)))
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_official_code_freezes_the_adapter_and_uses_a_tiny_alpha():
    official = _model(None, official=True)
    assert official.alpha == pytest.approx(1e-4)
    assert not any(p.requires_grad for p in official.adapter.parameters())
    assert isinstance(official.adapter[-1], torch.nn.ReLU)
    default = _model(None)
    assert default.alpha == pytest.approx(0.1)
    assert all(p.requires_grad for p in default.adapter.parameters())


def test_align_objective_trains_the_adapter_towards_cf_item_embeddings_only():
    model = _model(0.5, objective="align")
    loss, _ = model.pairwise_loss(U, P, N)
    # hinge 0.05 as above, plus MSE(adapter(text of items 0, 1) = [3, 0], e = [2,0], [0.5,0])
    mse = ((3 - 2) ** 2 + 0 + (3 - 0.5) ** 2 + 0) / 4
    assert loss.item() == pytest.approx(0.05 + mse, rel=1e-6)
    loss.backward()
    bias_grad = model.adapter[2].bias.grad
    # d MSE / d bias = 2/4 * ([1, 0] + [2.5, 0]); the ranking term adds nothing (h detached)
    assert bias_grad.tolist() == pytest.approx([2 / 4 * 3.5, 0.0])


def test_loss_objective_lets_the_ranking_loss_reach_the_adapter():
    model = _model(0.5, objective="loss")
    loss, _ = model.pairwise_loss(U, P, N)
    loss.backward()
    # hinge active: d/d bias of α·e_u·h = 0.5·e_u = [0.5, 0]
    assert model.adapter[2].bias.grad.tolist() == pytest.approx([0.5, 0.0])
