"""CausalDiffRec's representation stage on a dense N×N graph (N = users + items; 2.6k on
ml-100k, so dense is both simpler and fast enough on CPU).

Environment generator (EERM's graph editer) → VGAE encoder → variational environment
inference (EVAE) → environment-conditioned latent diffusion; per-environment losses are
combined into the invariant-risk objective Var_k(ℓ_k) + β·Mean_k(ℓ_k).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .diffusion import Denoiser, GaussianDiffusion, ImportanceSampler, linear_var_schedule


def dense_adjacency(n_users: int, n_items: int, users, items, symmetric: bool) -> torch.Tensor:
    """A[s, d] = 1 for an edge s→d over users 0..U−1 then items U..; the official code
    stores user→item only (``symmetric=False``)."""
    n = n_users + n_items
    a = torch.zeros(n, n)
    u = torch.as_tensor(users, dtype=torch.long)
    i = torch.as_tensor(items, dtype=torch.long) + n_users
    a[u, i] = 1.0
    if symmetric:
        a[i, u] = 1.0
    return a


def gcn_normalize(a: torch.Tensor) -> torch.Tensor:
    """GCNConv's propagation matrix for edges s→d: D^-1/2 (Aᵀ + I) D^-1/2, rows = targets."""
    a_hat = a.T + torch.eye(len(a))
    d = a_hat.sum(1).pow(-0.5)
    return d.unsqueeze(1) * a_hat * d.unsqueeze(0)


class EnvironmentGenerator(nn.Module):
    """K learnable edit distributions over the N×N graph; each environment = noise +
    ``edits`` toggles per node drawn from softmax over column logits. Trained by
    REINFORCE to *maximise* the variance of the per-environment risks (EERM)."""

    def __init__(self, n_nodes: int, n_envs: int, edits: int, noise_level: float,
                 symmetric: bool) -> None:
        super().__init__()
        self.n, self.k, self.edits = n_nodes, n_envs, edits
        self.noise_level, self.symmetric = noise_level, symmetric
        self.logits = nn.Parameter(torch.empty(n_envs, n_nodes, n_nodes))
        self.reset()

    def reset(self) -> None:
        nn.init.uniform_(self.logits)

    def forward(self, a: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        if self.noise_level > 0:
            mask = torch.rand(n, n) < self.noise_level
            values = torch.randint(0, 2, (n, n)).float()
            if self.symmetric:
                mask, values = torch.triu(mask), torch.triu(values)
                mask, values = mask | mask.T, values + torch.triu(values, 1).T
            a = torch.where(mask, values, a)
        logits = self.logits[k]
        log_prob = logits - torch.logsumexp(logits, dim=0, keepdim=True)  # softmax per column
        picked = torch.multinomial(log_prob.T.exp().detach(), self.edits, replacement=False)  # [v, s] → u
        cols = torch.arange(n).unsqueeze(1).expand_as(picked)
        toggle = torch.zeros(n, n, dtype=torch.bool)
        toggle[picked, cols] = True
        if self.symmetric:
            toggle = toggle | toggle.T
        edited = torch.where(toggle, 1 - a, a)
        return edited, log_prob[picked, cols].sum()


class VGAE(nn.Module):
    """GCN(feat→h) → ReLU → two GCN(h→d) heads for μ and log σ; decoder σ(z zᵀ)."""

    def __init__(self, feat_dim: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.w0 = nn.Linear(feat_dim, hidden)
        self.w_mu = nn.Linear(hidden, dim)
        self.w_logstd = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, prop: torch.Tensor, sample: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = torch.relu(prop @ self.w0(x))
        ph = prop @ h
        mu, logstd = self.w_mu(ph), self.w_logstd(ph).clamp(max=10)
        z = mu + torch.randn_like(mu) * logstd.exp() if sample else mu
        return z, mu, logstd

    @staticmethod
    def loss(z_hat: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logstd: torch.Tensor
             ) -> torch.Tensor:
        """norm · weighted BCE(σ(ẑ ẑᵀ), A) − KL, as in Kipf & Welling's GAE code."""
        n2, pos = target.numel(), target.sum()
        pos_weight = (n2 - pos) / pos.clamp(min=1)
        norm = n2 / (2 * (n2 - pos)).clamp(min=1)
        bce = F.binary_cross_entropy_with_logits(z_hat @ z_hat.T, target, pos_weight=pos_weight)
        kl = 0.5 / len(mu) * (1 + 2 * logstd - mu.pow(2) - (2 * logstd).exp()).sum(1).mean()
        return norm * bce - kl


class EnvironmentInference(nn.Module):
    """q(e | z) = N(μ_e, σ_e) from ReLU(z), a linear decoder back to z, and a learnable
    Gaussian prior p(e)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(dim, dim)
        self.logstd = nn.Linear(dim, dim)
        self.dec = nn.Linear(dim, dim)
        self.prior_mu = nn.Parameter(torch.zeros(dim))
        self.prior_logstd = nn.Parameter(torch.zeros(dim))

    def forward(self, z: torch.Tensor, mode: str, recon_target: str, sample: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (condition e, L_env). ``mode``: posterior (e ~ q(e|z), the paper's
        intent), decoder_on_z (official code: e = dec(ReLU(z))), none (e ≡ 0)."""
        h = torch.relu(z)
        mu, logstd = self.mu(h), self.logstd(h).clamp(-10, 10)
        e = mu + torch.randn_like(mu) * logstd.exp() if sample else mu
        target = z.detach() if recon_target == "z" else logstd.detach()
        kl = (self.prior_logstd - logstd
              + ((2 * logstd).exp() + (mu - self.prior_mu).pow(2)) / (2 * (2 * self.prior_logstd).exp())
              - 0.5).sum(-1).mean()
        loss = F.mse_loss(self.dec(e), target) + kl
        if mode == "posterior":
            cond = e
        elif mode == "decoder_on_z":
            cond = self.dec(h)
        else:
            cond = torch.zeros_like(mu)
        return cond, loss


class Representation(nn.Module):
    """Everything before the recommendation head, with its optimisers."""

    def __init__(self, p: Any, n_users: int, n_items: int, features: torch.Tensor) -> None:
        super().__init__()
        self.p, self.n_users = p, n_users
        n = n_users + n_items
        self.register_buffer("features", features)
        self.generator = EnvironmentGenerator(n, p.n_envs, p.edits_per_node, p.noise_level,
                                              p.symmetrize_edges)
        self.vgae = VGAE(features.shape[1], p.dim, p.dim)
        self.env = EnvironmentInference(p.dim)
        self.denoiser = Denoiser(p.dim, p.dim, p.dim, p.time_emb_dim, p.dropout)
        self.diffusion = GaussianDiffusion(linear_var_schedule(p.steps, p.noise_scale,
                                                               p.noise_min, p.noise_max))
        self.sampler = ImportanceSampler(p.steps, p.importance_history)
        self.opt_vgae = torch.optim.Adam(self.vgae.parameters(), lr=p.lr)
        self.opt_rest = torch.optim.Adagrad(list(self.denoiser.parameters()) +
                                            list(self.env.parameters()), lr=p.lr2, weight_decay=0.0)
        self.opt_gen = torch.optim.Adagrad(self.generator.parameters(), lr=p.lr2)

    def env_risk(self, a_env: torch.Tensor) -> dict[str, torch.Tensor]:
        """ℓ_k for one environment graph, with its parts."""
        p = self.p
        z, mu, logstd = self.vgae(self.features, gcn_normalize(a_env))
        cond, l_env = self.env(z, p.env_condition, p.env_recon_target)
        t, pt = self.sampler.sample(len(z))
        z0_hat = self.denoiser(self.diffusion.q_sample(z, t), t, cond)
        per_node = ((z - z0_hat) ** 2).mean(-1)
        if p.reweight:
            per_node = self.diffusion.loss_weight(t) * per_node
        self.sampler.update(t, per_node)
        l_diff = (per_node / pt).mean()
        l_vgae = VGAE.loss(z0_hat, a_env, mu, logstd)
        if p.loss_args == "intended":
            risk = 0.1 * (l_diff + l_vgae) + 0.01 * l_env
        else:  # official code: arguments shifted, L_env dropped
            risk = 0.1 * (1 + l_diff) + 0.01 * l_vgae
        return {"risk": risk, "diff": l_diff, "vgae": l_vgae, "env": l_env}

    def outer_step(self, a_train: torch.Tensor) -> dict[str, float]:
        p = self.p
        risks, log_probs, parts = [], [], []
        for k in range(p.n_envs):
            a_env, log_p = self.generator(a_train, k)
            out = self.env_risk(a_env)
            risks.append(out["risk"]); log_probs.append(log_p); parts.append(out)
        risks_t = torch.stack(risks)
        var = risks_t.var() if len(risks) > 1 else torch.zeros(())
        loss = p.beta * risks_t.mean() + (var if p.use_var else 0.0)
        self.opt_vgae.zero_grad(); self.opt_rest.zero_grad()
        loss.backward()
        self.opt_vgae.step(); self.opt_rest.step()
        # REINFORCE: the generator seeks environments that make the risks differ
        self.opt_gen.zero_grad()
        (-var.detach() * torch.stack(log_probs).sum()).backward()
        self.opt_gen.step()
        return {"outer_loss": float(loss.detach()), "risk_var": float(var.detach()),
                "l_diff": float(torch.stack([o["diff"].detach() for o in parts]).mean()),
                "l_vgae": float(torch.stack([o["vgae"].detach() for o in parts]).mean())}

    def epoch(self, a_train: torch.Tensor) -> dict[str, float]:
        if self.p.reset_generator:
            self.generator.reset()
        self.train()
        stats: dict[str, float] = {}
        for _ in range(self.p.outer_steps):
            stats = self.outer_step(a_train)
        return stats

    @torch.no_grad()
    def infer(self, a: torch.Tensor) -> torch.Tensor:
        """ẑ₀ for every node: encode the graph, infer e, run the reverse diffusion."""
        self.eval()
        if self.p.sampling_dropout:  # official code never puts the MLP in eval mode
            self.denoiser.train()
        z, _, _ = self.vgae(self.features, gcn_normalize(a), sample=False)
        cond, _ = self.env(z, self.p.env_condition, self.p.env_recon_target, sample=False)
        return self.diffusion.reverse(self.denoiser, z, cond)
