"""TRPA loss on hand-made log-probs against hand-computed values."""
import math

import torch

from plugins.trpa.loss import k3, trpa_loss


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_pair_loss_anisotropic_beta_and_token_mean():
    # two responses, 2 tokens each; response 1 has only its first token in the mask
    logp = torch.tensor([[-1.0, -2.0], [-3.0, -0.5]])
    ref = torch.tensor([[-1.5, -2.5], [-2.0, -9.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    rho_w, rho_l = 0.5, -1.0                       # token means of logp - ref
    loss, st = trpa_loss(logp, ref, logp.clone(), mask, [1, 3], [(0, 1)], beta=0.1,
                         anisotropy=2.5, tr_coef=0.0)
    expected = -math.log(_sig(0.25 * (rho_w - rho_l)))  # winner is level 1: beta * a
    assert abs(float(loss) - expected) < 1e-6
    assert st["h_high"] == rho_w and st["h_low"] == rho_l
    loss2, _ = trpa_loss(logp, ref, logp.clone(), mask, [2, 3], [(0, 1)], beta=0.1,
                         anisotropy=2.5, tr_coef=0.0)
    assert abs(float(loss2) + math.log(_sig(0.1 * 1.5))) < 1e-6  # winner L2: plain beta


def test_trust_region_is_zero_at_pi_old_and_matches_k3():
    logp = torch.tensor([[-1.0, -2.0]])
    old = torch.tensor([[-1.2, -1.0]])
    mask = torch.ones(1, 2)
    _, st0 = trpa_loss(logp, logp, logp.clone(), mask, [1], [], tr_coef=1.0)
    assert st0["tr_kl"] == 0.0
    loss, st = trpa_loss(logp, logp, old, mask, [1], [], tr_coef=0.5)
    d = [-1.2 + 1.0, -1.0 + 2.0]
    tr = sum(math.exp(x) - x - 1 for x in d) / 2
    assert abs(st["tr_kl"] - tr) < 1e-6
    # no pair: fallback -log σ(+ρ) for a level-1 response (ρ = 0 here) plus c·TR
    assert abs(float(loss) - (math.log(2) + 0.5 * tr)) < 1e-6
    assert float(k3(torch.tensor(0.0), torch.tensor(100.0))) == 10.0  # clamped


def test_sqrt_variant_and_gradient_direction():
    logp = torch.zeros(2, 3, requires_grad=True)
    ref = torch.zeros(2, 3)
    loss, _ = trpa_loss(logp, ref, ref, torch.ones(2, 3), [1, 2], [(0, 1)], sqrt_tr=True,
                        tr_coef=1.0)
    assert abs(float(loss.detach()) - (math.log(2) + 0.5)) < 1e-6
    loss.backward()
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()  # winner up, loser down
