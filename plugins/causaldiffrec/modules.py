"""CausalDiffRec's representation stage on a dense N×N graph (N = users + items; 2.6k on
ml-100k, so dense is both simpler and fast enough on CPU).

Environment generator (EERM's graph editer) → VGAE encoder → variational environment
inference (EVAE) → environment-conditioned latent diffusion; per-environment losses are
combined into the invariant-risk objective Var_k(ℓ_k) + β·Mean_k(ℓ_k).
"""
from __future__ import annotations

from dataclasses import dataclass
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


class GCNPropagation:
    """``prop @ x`` for prop = gcn_normalize(a), without building prop: D^-1/2 (Aᵀ x' + x')
    with x' = D^-1/2 x. Building the dense N×N matrix (transpose, identity, two scalings)
    for every environment graph cost more than the products themselves."""

    def __init__(self, a: torch.Tensor) -> None:
        self.a = a
        self.scale = (a.sum(0) + 1).pow(-0.5).unsqueeze(1)  # targets' in-degree + self-loop

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        scaled = self.scale * x
        return self.scale * (self.a.T @ scaled + scaled)


class EnvironmentGenerator(nn.Module):
    """K learnable edit distributions over the N×N graph; each environment = noise +
    ``edits`` toggles per node drawn from a softmax over that target node's logits. Trained by
    REINFORCE to *maximise* the variance of the per-environment risks (EERM).

    Why the sampling and the gradient are written out: on ml-100k (N ≈ 2.4k) torch's
    multinomial without replacement (exponential keys + top-k over N² entries), dense
    noise masks and autograd through K slices of the N×N logits were most of an outer
    step's CPU time. Noise and toggles are written sparsely, picks are drawn in order
    with duplicates skipped (the same law as sampling without replacement), and the
    REINFORCE gradient of Σ log p is set in closed form (picks − s·softmax per target).
    """

    def __init__(self, n_nodes: int, n_envs: int, edits: int, noise_level: float,
                 symmetric: bool) -> None:
        super().__init__()
        self.n, self.k, self.edits = n_nodes, n_envs, edits
        self.noise_level, self.symmetric = noise_level, symmetric
        # logits[k, v, u]: environment k's score for toggling (u, v) when editing target v
        # (rows = targets, so each target's softmax is over a contiguous row)
        self.logits = nn.Parameter(torch.empty(n_envs, n_nodes, n_nodes))
        self.reset()

    def reset(self) -> None:
        nn.init.uniform_(self.logits)

    def noise(self, a: torch.Tensor) -> torch.Tensor:
        """A copy of ``a`` with about ``noise_level`` of its entries (of its unordered
        pairs when symmetric: the upper triangle's draws, mirrored) overwritten by a
        fair coin. Binomial(N², level) positions are drawn with replacement, so each
        entry is hit with probability 1 − (1 − 1/N²)^count ≈ level."""
        n = self.n
        out = a.clone()
        if self.noise_level <= 0:
            return out
        count = int(torch.distributions.Binomial(n * n, torch.tensor(float(self.noise_level))).sample())
        flat = torch.randint(n * n, (count,))
        rows, cols = flat // n, flat % n
        values = (torch.rand(count) < 0.5).to(a.dtype)
        if self.symmetric:
            upper = rows <= cols
            rows, cols, values = rows[upper], cols[upper], values[upper]
            out[cols, rows] = values
        out[rows, cols] = values
        return out

    def sample_edits(self, by_target: torch.Tensor) -> torch.Tensor:
        """``edits`` distinct sources u per target v, ~ without replacement from
        by_target[v]: draw with replacement in order and keep the first distinct ones
        (successive sampling), which is the without-replacement law. Returns [N, s]."""
        s = self.edits
        draws = torch.multinomial(by_target, 3 * s + 4, replacement=True)
        earlier = draws.unsqueeze(2) == draws.unsqueeze(1)          # [v, j, i]: draw j == draw i
        first = ~torch.tril(earlier, diagonal=-1).any(2)             # not seen before
        rank = first.cumsum(1)
        keep = first & (rank <= s)
        short = keep.sum(1) < s
        picked = torch.empty(self.n, s, dtype=torch.long)
        if bool(short.any()):  # rare: too many repeats; fall back to torch's sampler
            picked[short] = torch.multinomial(by_target[short], s, replacement=False)
        ok = ~short
        picked[ok] = draws[ok][keep[ok]].view(-1, s)
        return picked

    def forward(self, a: torch.Tensor, k: int) -> tuple[torch.Tensor, "Edits"]:
        n = self.n
        a = self.noise(a)
        logits = self.logits[k].detach()
        probs = torch.softmax(logits, dim=1)  # row v: p(u | v)
        picked = self.sample_edits(probs) if self.edits > 0 else torch.empty(n, 0, dtype=torch.long)
        cols = torch.arange(n).unsqueeze(1).expand_as(picked)
        rows, cols = picked.reshape(-1), cols.reshape(-1)
        if self.symmetric:  # toggle each unordered pair once, as toggle | toggleᵀ does
            lo, hi = torch.minimum(rows, cols), torch.maximum(rows, cols)
            key = torch.unique(lo * n + hi)
            lo, hi = key // n, key % n
            flipped = 1 - a[lo, hi]
            a[lo, hi] = flipped
            a[hi, lo] = flipped
        else:
            a[rows, cols] = 1 - a[rows, cols]
        log_p = probs.gather(1, picked).log().sum()  # Σ (logit − logsumexp) over the picks
        return a, Edits(k, picked, probs, float(log_p))

    def reinforce(self, edits: list["Edits"], reward: float) -> None:
        """Set logits.grad to ∇(−reward · Σ_k log p_k): for environment k and target v,
        ∂ log p_k / ∂ logits[k, v, :] = onehot(picks of v) − s · softmax(logits[k, v, :])."""
        grad = torch.zeros_like(self.logits)
        for e in edits:
            g = grad[e.k]
            torch.mul(e.probs, self.edits * reward, out=g)
            g.scatter_add_(1, e.picked, torch.full(e.picked.shape, -reward))
        self.logits.grad = grad


@dataclass
class Edits:
    """One environment's sampled edits: which generator, the picks [N, s], the column
    softmax they were drawn from, and log p of the picks (for logging and tests)."""
    k: int
    picked: torch.Tensor
    probs: torch.Tensor
    log_prob: float


class VGAE(nn.Module):
    """GCN(feat→h) → ReLU → two GCN(h→d) heads for μ and log σ; decoder σ(z zᵀ)."""

    def __init__(self, feat_dim: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.w0 = nn.Linear(feat_dim, hidden)
        self.w_mu = nn.Linear(hidden, dim)
        self.w_logstd = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, prop: "torch.Tensor | GCNPropagation", sample: bool = True
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
    """Everything before the recommendation head, with its optimisers.

    ``p.environment`` false is the no-environment ablation: no generator (one
    environment, the clean train graph, so no Var term and no REINFORCE), no
    environment inference (no EVAE, e ≡ 0, no L_env): VGAE + unconditioned latent
    diffusion, DiffRec-style. ``updates`` counts representation updates (outer steps).
    """

    def __init__(self, p: Any, n_users: int, n_items: int, features: torch.Tensor) -> None:
        super().__init__()
        self.p, self.n_users = p, n_users
        n = n_users + n_items
        self.n_envs = p.n_envs if p.environment else 1
        self.updates = 0
        self.register_buffer("features", features)
        self.generator = (EnvironmentGenerator(n, p.n_envs, p.edits_per_node, p.noise_level,
                                               p.symmetrize_edges) if p.environment else None)
        self.vgae = VGAE(features.shape[1], p.dim, p.dim)
        self.env = EnvironmentInference(p.dim) if p.environment else None
        self.denoiser = Denoiser(p.dim, p.dim, p.dim, p.time_emb_dim, p.dropout)
        self.diffusion = GaussianDiffusion(linear_var_schedule(p.steps, p.noise_scale,
                                                               p.noise_min, p.noise_max))
        self.sampler = ImportanceSampler(p.steps, p.importance_history)
        self.opt_vgae = torch.optim.Adam(self.vgae.parameters(), lr=p.lr)
        rest = list(self.denoiser.parameters()) + (list(self.env.parameters()) if self.env else [])
        self.opt_rest = torch.optim.Adagrad(rest, lr=p.lr2, weight_decay=0.0)
        self.opt_gen = (torch.optim.Adagrad(self.generator.parameters(), lr=p.lr2)
                        if self.generator else None)

    def condition(self, z: torch.Tensor, sample: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The diffusion's condition e and L_env (None without an environment part)."""
        if self.env is None:
            return torch.zeros_like(z), None
        return self.env(z, self.p.env_condition, self.p.env_recon_target, sample=sample)

    def env_risk(self, a_env: torch.Tensor) -> dict[str, torch.Tensor]:
        """ℓ_k for one environment graph, with its parts."""
        p = self.p
        z, mu, logstd = self.vgae(self.features, GCNPropagation(a_env))
        cond, l_env = self.condition(z)
        t, pt = self.sampler.sample(len(z))
        z0_hat = self.denoiser(self.diffusion.q_sample(z, t), t, cond)
        per_node = ((z - z0_hat) ** 2).mean(-1)
        if p.reweight:
            per_node = self.diffusion.loss_weight(t) * per_node
        self.sampler.update(t, per_node)
        l_diff = (per_node / pt).mean()
        l_vgae = VGAE.loss(z0_hat, a_env, mu, logstd)
        if p.loss_args == "intended":
            risk = 0.1 * (l_diff + l_vgae) + (0.01 * l_env if l_env is not None else 0.0)
        else:  # official code: arguments shifted, L_env dropped
            risk = 0.1 * (1 + l_diff) + 0.01 * l_vgae
        return {"risk": risk, "diff": l_diff, "vgae": l_vgae,
                "env": l_env if l_env is not None else torch.zeros(())}

    def outer_step(self, a_train: torch.Tensor) -> dict[str, float]:
        """One representation update: K environment graphs (or the clean train graph
        when ``environment`` is off), one backward through Var_k(ℓ_k) + β·Mean_k(ℓ_k),
        one step of the VGAE/denoiser/EVAE optimisers and one REINFORCE step of the
        generator."""
        p = self.p
        risks, edits, parts = [], [], []
        for k in range(self.n_envs):
            if p.environment:
                a_env, edit = self.generator(a_train, k)
                edits.append(edit)
            else:
                a_env = a_train
            out = self.env_risk(a_env)
            risks.append(out["risk"]); parts.append(out)
        risks_t = torch.stack(risks)
        var = risks_t.var() if len(risks) > 1 else torch.zeros(())
        loss = p.beta * risks_t.mean() + (var if p.use_var else 0.0)
        self.opt_vgae.zero_grad(); self.opt_rest.zero_grad()
        loss.backward()
        self.opt_vgae.step(); self.opt_rest.step()
        if edits:  # REINFORCE: the generator seeks environments that make the risks differ
            self.opt_gen.zero_grad()
            self.generator.reinforce(edits, float(var.detach()))
            self.opt_gen.step()
        self.updates += 1
        return {"outer_loss": float(loss.detach()), "risk_var": float(var.detach()),
                "l_diff": float(torch.stack([o["diff"].detach() for o in parts]).mean()),
                "l_vgae": float(torch.stack([o["vgae"].detach() for o in parts]).mean())}

    def epoch(self, a_train: torch.Tensor) -> dict[str, float]:
        if self.p.reset_generator and self.generator is not None:
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
        z, _, _ = self.vgae(self.features, GCNPropagation(a), sample=False)
        cond, _ = self.condition(z, sample=False)
        return self.diffusion.reverse(self.denoiser, z, cond)
