"""UDRRA losses on hand-made log-ratios, and the exact target / KL computations."""
import math

import torch

from harness.tasks.preference import exact_target, kl, make_preference, preference_metrics, tv
from plugins.udrra import losses


def test_each_loss_against_a_hand_computed_value():
    rho1, rho2 = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])
    r1, r2 = torch.tensor([0.5, 0.2]), torch.tensor([0.1, 0.4])
    tau = 0.5
    # RDA: (τ(ρ1−ρ2) − (r1−r2))²: (0.5−0.4)², (−1−(−0.2))²
    assert abs(float(losses.rda_loss(rho1, rho2, r1, r2, tau)) - (0.01 + 0.64) / 2) < 1e-6
    # PRA = DPO: −log σ(τ(ρw−ρl))
    exp_pra = (-math.log(1 / (1 + math.exp(-0.5))) - math.log(1 / (1 + math.exp(1.0)))) / 2
    assert abs(float(losses.pra_loss(rho1, rho2, tau)) - exp_pra) < 1e-6
    # IPO: (ρw−ρl − 1/(2τ))² = (1−1)², (−2−1)²
    assert abs(float(losses.ipo_loss(rho1, rho2, tau)) - 4.5) < 1e-6
    # RA: (τρ + τlogZ − r)²
    tlz = torch.tensor([0.1, 0.3])
    assert abs(float(losses.ra_loss(rho1, r1, tau, tlz)) - ((1.1 - 0.5) ** 2 + (-0.2 - 0.2) ** 2) / 2) < 1e-6
    # soft labels reduce to hard ones at weight 1
    assert abs(float(losses.pra_loss(rho1, rho2, tau, weight=torch.ones(2))) - exp_pra) < 1e-6
    # REINFORCE: advantages of r − τρ centred per prompt
    lp = torch.tensor([-1.0, -2.0, -3.0])
    rho = torch.tensor([0.0, 0.0, 2.0])
    reward = torch.tensor([1.0, 0.0, 1.0])
    val = losses.bda_reinforce_loss(lp, rho, reward, 0.5, torch.tensor([0, 0, 1]))
    assert abs(float(val) - (-(0.5 * -1.0 + -0.5 * -2.0 + 0.0) / 3)) < 1e-6


def test_trpa_style_levels_pairs_and_anisotropic_tau():
    from harness.tasks.levels import level_pairs

    rewards = torch.tensor([0.95, 0.1, 0.6, 1.0, 0.0, 0.74])
    levels = losses.reward_levels(rewards, 4)
    assert levels.tolist() == [1, 4, 2, 1, 4, 2]  # equal-width bins, 1 = best
    rho = torch.tensor([1.0, 0.0, 0.5, 2.0, -1.0, 0.0])
    groups = [0, 0, 0, 1, 1, 1]
    pairs = level_pairs(levels.tolist(), groups)
    assert sorted(pairs) == [(0, 1), (0, 2), (2, 1), (3, 4), (3, 5), (5, 4)]
    tau, a = 0.5, 2.0
    by_hand = [-math.log(1 / (1 + math.exp(-t * (rho[w] - rho[lo]).item())))
               for (w, lo), t in zip(pairs, [tau * a if levels[w] == 1 else tau for w, _ in pairs])]
    val = losses.leveled_pra_loss(rho, levels, pairs, tau, a)
    assert abs(float(val) - sum(by_hand) / len(by_hand)) < 1e-6
    assert float(losses.leveled_pra_loss(rho, levels, [], tau, a)) == 0.0


def test_exact_target_kl_and_minimisers():
    ref = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    r = torch.tensor([[0.0, 1.0, 0.5]])
    tau = 0.5
    tgt = exact_target(ref, r, tau)
    w = torch.tensor([0.5, 0.25 * math.e ** 2, 0.25 * math.e])
    assert torch.allclose(tgt.exp(), (w / w.sum())[None], atol=1e-6)
    p = torch.log(torch.tensor([[0.2, 0.3, 0.5]]))
    hand = sum(a * math.log(a / b) for a, b in zip([0.2, 0.3, 0.5], (w / w.sum()).tolist()))
    assert abs(float(kl(p, tgt)) - hand) < 1e-6
    assert float(kl(tgt, tgt)) == 0.0 and abs(float(tv(p, p))) < 1e-9
    assert abs(float(losses.bda_exact_loss(p, tgt)) - hand) < 1e-6
    # at the target, the implicit reward τρ + τlogZ equals r: RA and RDA losses vanish
    rho = (tgt - ref)[0]
    tlz = tau * torch.logsumexp(ref + r / tau, -1)
    assert float(losses.ra_loss(rho, r[0], tau, tlz)) < 1e-10
    assert float(losses.rda_loss(rho[[0, 1]], rho[[2, 0]], r[0, [0, 1]], r[0, [2, 0]], tau)) < 1e-10
    # DPO's gradient at the target is zero in expectation over BT labels (p = σ(r1−r2))
    rho_t = rho.clone().requires_grad_(True)
    i, j = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])
    p12 = torch.sigmoid(r[0, i] - r[0, j]) if tau == 1 else torch.sigmoid((r[0, i] - r[0, j]))
    loss = losses.pra_loss(rho_t[i], rho_t[j], tau, weight=p12)
    loss.backward()
    assert rho_t.grad.abs().max() < 1e-6


def test_preference_task_is_exact_and_seeded():
    a, b = make_preference(seed=4), make_preference(seed=4)
    assert torch.equal(a.rewards, b.rewards) and a.rewards.shape == (8, 216)
    assert float(a.rewards.min()) == 0.0 and float(a.rewards.max()) == 1.0
    assert torch.allclose(a.base_probs.sum(-1), torch.ones(8))
    means, per = preference_metrics(a.base_probs.log(), a.base_probs.log(), a.rewards, 1.0)
    assert means["kl_ref"] == 0.0 and per["kl_target"].shape == (8,)
    assert means["target_reward"] > means["expected_reward"]  # the target improves reward
