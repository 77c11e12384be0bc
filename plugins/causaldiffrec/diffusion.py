"""Gaussian latent diffusion with x0-prediction (DiffRec's parameterisation), as
CausalDiffRec uses it on node embeddings.

Why here and not in harness/blocks: no other method in the bench uses a diffusion
schedule yet; move it to a block when a second one does.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


def linear_var_schedule(steps: int, noise_scale: float, noise_min: float, noise_max: float
                        ) -> torch.Tensor:
    """β_t for DiffRec's "linear-var": 1 − ᾱ_t rises linearly from noise_scale·noise_min
    to noise_scale·noise_max, and β_t = 1 − ᾱ_t / ᾱ_{t−1}."""
    if steps < 1:
        raise ValueError(f"diffusion steps must be >= 1, got {steps}")
    if not 0 < noise_min <= noise_max and noise_scale > 0:
        raise ValueError("need 0 < noise_min <= noise_max and noise_scale > 0")
    variance = torch.linspace(noise_scale * noise_min, noise_scale * noise_max, steps,
                              dtype=torch.float64)
    alpha_bar = 1 - variance
    betas = torch.empty(steps, dtype=torch.float64)
    betas[0] = 1 - alpha_bar[0]
    betas[1:] = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=0.999)


class GaussianDiffusion:
    """Forward noising, posterior q(x_{t−1} | x_t, x̂₀), SNR loss weights and the
    deterministic reverse chain (posterior mean, no sampling noise)."""

    def __init__(self, betas: torch.Tensor) -> None:
        self.steps = len(betas)
        self.betas = betas
        alphas = 1 - betas
        self.alpha_bar = torch.cumprod(alphas, 0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        self.coef_x0 = betas * prev.sqrt() / (1 - self.alpha_bar)
        self.coef_xt = (1 - prev) * alphas.sqrt() / (1 - self.alpha_bar)
        self.posterior_variance = betas * (1 - prev) / (1 - self.alpha_bar)

    def _at(self, table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return table[t].float().unsqueeze(-1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
                 ) -> torch.Tensor:
        noise = torch.randn_like(x0) if noise is None else noise
        return self._at(self.alpha_bar.sqrt(), t) * x0 + self._at((1 - self.alpha_bar).sqrt(), t) * noise

    def posterior_mean(self, x0_hat: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._at(self.coef_x0, t) * x0_hat + self._at(self.coef_xt, t) * xt

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar[t]
        return (a / (1 - a)).float()

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """SNR(t−1) − SNR(t), and 1 at t = 0 (DiffRec's reweighting)."""
        w = self.snr((t - 1).clamp(min=0)) - self.snr(t)
        return torch.where(t == 0, torch.ones_like(w), w)

    @torch.no_grad()
    def reverse(self, model, x0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Start from q(x_T | x₀) and walk back T deterministic steps; x̂₀ clamped to
        [−1, 1] at every step (as in the official code)."""
        last = torch.full((len(x0),), self.steps - 1, dtype=torch.long)
        x = self.q_sample(x0, last)
        for step in reversed(range(self.steps)):
            t = torch.full((len(x0),), step, dtype=torch.long)
            x = self.posterior_mean(model(x, t, cond).clamp(-1, 1), x, t)
        return x


class ImportanceSampler:
    """Timesteps uniform until every t has ``history`` recorded losses, then
    p_t ∝ sqrt(E[L_t²]) mixed with ``uniform`` of the uniform distribution. Returns
    (t, p_t·T) so that dividing the loss by the second keeps it unbiased."""

    def __init__(self, steps: int, history: int = 10, uniform: float = 0.001) -> None:
        self.steps, self.history, self.uniform = steps, history, uniform
        self.losses = torch.zeros(steps, history, dtype=torch.float64)
        self.count = torch.zeros(steps, dtype=torch.long)

    @property
    def warm(self) -> bool:
        return bool((self.count >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        if not self.warm:
            return torch.full((self.steps,), 1.0 / self.steps, dtype=torch.float64)
        p = self.losses.pow(2).mean(-1).sqrt()
        p = p / p.sum()
        return p * (1 - self.uniform) + self.uniform / self.steps

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.probabilities()
        if not self.warm:
            t = torch.randint(self.steps, (n,))
            return t, torch.ones(n)
        t = torch.multinomial(p, n, replacement=True)
        return t, (p[t] * self.steps).float()

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Append each sampled step's losses, keeping the latest ``history`` per step.

        Vectorised (one scatter instead of a Python loop over the steps drawn): every
        entry, old or new, gets its distance from the newest entry of its step, and
        the last ``history`` of them land in chronological order at the front."""
        losses = losses.detach().double()
        steps, hist = self.steps, self.history
        order = torch.argsort(t, stable=True)
        ts, ls = t[order], losses[order]
        n_new = torch.bincount(ts, minlength=steps)
        new_from_end = n_new.cumsum(0)[ts] - 1 - torch.arange(len(ts))
        kept = self.count.clamp(max=hist)
        length = (kept + n_new).clamp(max=hist)
        slot = torch.arange(hist).unsqueeze(0).expand(steps, hist)
        old_from_end = (n_new + kept - 1).unsqueeze(1) - slot
        old = (slot < kept.unsqueeze(1)) & (old_from_end < length.unsqueeze(1))
        rows = torch.arange(steps).unsqueeze(1).expand(steps, hist)
        merged = torch.zeros_like(self.losses)
        merged[rows[old], (length.unsqueeze(1) - 1 - old_from_end)[old]] = self.losses[old]
        new = new_from_end < length[ts]
        merged[ts[new], (length[ts] - 1 - new_from_end)[new]] = ls[new]
        self.losses = merged
        self.count += n_new


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float().unsqueeze(-1) * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], -1) if dim % 2 else emb


class Denoiser(nn.Module):
    """f(z_t, t, e) → ẑ₀: dropout on z_t, [z_t ‖ temb ‖ e] → Linear → tanh → Linear."""

    def __init__(self, dim: int, hidden: int, cond_dim: int, time_dim: int = 10,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.time = nn.Linear(time_dim, time_dim)
        self.drop = nn.Dropout(dropout)
        self.net = nn.Sequential(nn.Linear(dim + time_dim + cond_dim, hidden), nn.Tanh(),
                                 nn.Linear(hidden, dim))
        for layer in (self.time, self.net[0], self.net[2]):
            nn.init.xavier_normal_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def forward(self, zt: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        temb = self.time(timestep_embedding(t, self.time_dim))
        return self.net(torch.cat([self.drop(zt), temb, cond], dim=-1))
