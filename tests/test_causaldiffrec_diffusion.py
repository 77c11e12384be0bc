"""CausalDiffRec's latent diffusion: schedule, posterior, SNR weights, importance sampling."""
from __future__ import annotations

import torch

from plugins.causaldiffrec.diffusion import (Denoiser, GaussianDiffusion, ImportanceSampler,
                                             linear_var_schedule)


def test_linear_var_schedule_matches_the_official_endpoints():
    betas = linear_var_schedule(100, 0.1, 0.01, 0.09)
    alpha_bar = torch.cumprod(1 - betas, 0)
    variance = 1 - alpha_bar
    assert torch.allclose(variance, torch.linspace(0.001, 0.009, 100, dtype=torch.float64), atol=1e-12)
    assert abs(float(alpha_bar[-1]) - 0.991) < 1e-9  # "the noise is very small"
    assert (betas > 0).all() and (betas < 0.999).all()


def test_posterior_mean_is_x0_at_t0_and_interpolates_later():
    diff = GaussianDiffusion(linear_var_schedule(10, 1.0, 0.1, 0.5))
    x0, xt = torch.randn(4, 3), torch.randn(4, 3)
    t0 = torch.zeros(4, dtype=torch.long)
    assert torch.allclose(diff.posterior_mean(x0, xt, t0), x0, atol=1e-6)
    t = torch.full((4,), 5, dtype=torch.long)
    mean = diff.posterior_mean(x0, xt, t)
    # coefficients of the Gaussian posterior: c0·x0 + ct·xt with c0, ct in (0, 1)
    c0, ct = float(diff.coef_x0[5]), float(diff.coef_xt[5])
    assert 0 < c0 < 1 and 0 < ct < 1
    assert torch.allclose(mean, c0 * x0 + ct * xt, atol=1e-6)


def test_q_sample_has_the_scheduled_moments():
    torch.manual_seed(0)
    diff = GaussianDiffusion(linear_var_schedule(10, 1.0, 0.1, 0.5))
    x0 = torch.full((20000, 1), 2.0)
    t = torch.full((20000,), 9, dtype=torch.long)
    xt = diff.q_sample(x0, t)
    ab = float(diff.alpha_bar[9])
    assert abs(float(xt.mean()) - 2.0 * ab ** 0.5) < 0.02
    assert abs(float(xt.var()) - (1 - ab)) < 0.02


def test_snr_weights_are_one_at_t0_and_snr_differences_after():
    diff = GaussianDiffusion(linear_var_schedule(100, 0.1, 0.01, 0.09))
    t = torch.tensor([0, 1, 50, 99])
    w = diff.loss_weight(t)
    assert float(w[0]) == 1.0
    snr = lambda s: float(diff.alpha_bar[s] / (1 - diff.alpha_bar[s]))  # noqa: E731
    for k, s in enumerate([1, 50, 99]):
        assert abs(float(w[k + 1]) - (snr(s - 1) - snr(s))) < 1e-3 * max(1.0, snr(s - 1))
    assert (w > 0).all()


def test_reverse_with_an_oracle_denoiser_returns_x0():
    diff = GaussianDiffusion(linear_var_schedule(20, 0.1, 0.01, 0.09))
    x0 = torch.rand(8, 4) * 1.6 - 0.8
    out = diff.reverse(lambda x, t, c: x0, x0, torch.zeros(8, 4))
    assert torch.allclose(out, x0, atol=1e-5)


def test_importance_sampler_is_uniform_until_warm_then_follows_losses():
    torch.manual_seed(0)
    s = ImportanceSampler(steps=4, history=2, uniform=0.0)
    t, pt = s.sample(10)
    assert not s.warm and torch.equal(pt, torch.ones(10))
    s.update(torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([1., 1., 1., 1., 1., 1., 3., 3.]))
    assert s.warm
    p = s.probabilities()
    assert torch.allclose(p, torch.tensor([1, 1, 1, 3], dtype=torch.float64) / 6)
    t, pt = s.sample(2000)
    assert (t == 3).float().mean() > 0.4
    assert torch.allclose(pt, (p[t] * 4).float())
    s.update(torch.tensor([3, 3, 3]), torch.tensor([5., 6., 7.]))  # keeps the latest two
    assert s.losses[3].tolist() == [6.0, 7.0] and int(s.count[3]) == 5


def test_denoiser_shapes_and_gradients():
    f = Denoiser(dim=6, hidden=6, cond_dim=6, time_dim=10)
    z, e = torch.randn(5, 6, requires_grad=True), torch.randn(5, 6)
    out = f(z, torch.tensor([0, 1, 2, 3, 99]), e)
    assert out.shape == (5, 6)
    out.sum().backward()
    assert z.grad is not None and all(p.grad is not None for p in f.parameters())


def _loop_update(losses: torch.Tensor, count: torch.Tensor, history: int, t, new_losses):
    """The reference: the per-step loop the vectorised update replaced."""
    for step in torch.unique(t).tolist():
        new = new_losses[t == step].double()
        c = int(count[step])
        merged = torch.cat([losses[step, : min(c, history)], new])[-history:]
        losses[step, : len(merged)] = merged
        count[step] = c + len(new)


def test_vectorised_importance_update_matches_the_per_step_loop():
    torch.manual_seed(0)
    s = ImportanceSampler(steps=7, history=4)
    ref_losses, ref_count = s.losses.clone(), s.count.clone()
    for n in (3, 1, 12, 30, 5, 40):
        t = torch.randint(7, (n,))
        values = torch.rand(n)
        s.update(t, values)
        _loop_update(ref_losses, ref_count, 4, t, values)
        assert torch.equal(s.count, ref_count)
        assert torch.equal(s.losses, ref_losses)
