"""SiReN (Seo et al. 2022, "SiReN: Sign-Aware Recommendation Using Graph Neural
Networks"): the two-encoder design LSGRec argues against.

* a LightGCN on the positive (liked) graph gives Z_p;
* an MLP over a separate embedding table gives Z_n for the negative graph (SiReN's
  argument: dislike edges are not homophilous, so no message passing over them);
* attention fuses them per node: a_v = softmax_s(qᵀ tanh(W z_v^s + b)), z = Σ_s a_s z^s;
* sign-aware BPR: −Σ_k log σ(sign(w)·(ŷ_ui − ŷ_uj_k)) over every training rating, so
  liked items rank above unobserved ones and disliked items below them.

The MLP depth (2 layers) and the shared K/degree^0.75 sampler are [inf] choices that
match the LSGRec code base (derived from SiReN's).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.blocks.graph import LightGCN, normalized_adjacency
from harness.blocks.signed import sampled_scores


def sign_aware_bpr(pos: torch.Tensor, neg: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """−mean_b Σ_k log σ(sign_b·(ŷ_ui − ŷ_uj_k)): likes above unobserved items, dislikes
    below them. ``pos`` [B], ``neg`` [B, K], ``sign`` [B] of ±1."""
    return -F.logsigmoid(sign.unsqueeze(1) * (pos.unsqueeze(1) - neg)).sum(1).mean()


class SiReN(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, n_layers: int,
                 adj_pos: torch.Tensor, mlp_layers: int = 2, reg_weight: float = 5e-5) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.reg_weight = reg_weight
        self.gnn = LightGCN(n_users, n_items, dim, n_layers, adj_pos)
        self.neg_ego = nn.Embedding(n_users + n_items, dim)
        nn.init.xavier_normal_(self.neg_ego.weight)
        layers: list[nn.Module] = []
        for i in range(mlp_layers):
            layers += [nn.Linear(dim, dim)] + ([nn.ReLU()] if i < mlp_layers - 1 else [])
        self.mlp = nn.Sequential(*layers)
        self.att = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        self._cache: Optional[torch.Tensor] = None

    @classmethod
    def from_dataset(cls, dataset, dim: int, n_layers: int, device="cpu", **kw) -> "SiReN":
        likes = dataset.likes("train")
        adj = normalized_adjacency(dataset.n_users, dataset.n_items, likes.user, likes.item,
                                   device=device)
        return cls(dataset.n_users, dataset.n_items, dim, n_layers, adj, **kw)

    def fused(self) -> torch.Tensor:
        """Z over users then items."""
        if not self.training and self._cache is not None:
            return self._cache
        u, i = self.gnn.embeddings()
        z_pos = torch.cat([u, i])
        z_neg = self.mlp(self.neg_ego.weight)
        views = torch.stack([z_pos, z_neg], dim=1)          # [N, 2, d]
        attn = F.softmax(self.att(views), dim=1)            # [N, 2, 1]
        z = (attn * views).sum(1)
        self._cache = None if self.training else z
        return z

    def train(self, mode: bool = True) -> "SiReN":
        self._cache = None  # children (the LightGCN) drop theirs too
        return super().train(mode)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        z = self.fused()
        return z[users] @ z[self.n_users:].T

    def signed_loss(self, users, items, weights, negatives) -> dict[str, torch.Tensor]:
        z = self.fused()
        pos, neg, l2 = sampled_scores(z[users], z[self.n_users:], items, negatives)
        return {"bpr": sign_aware_bpr(pos, neg, torch.sign(weights)), "reg": self.reg_weight * l2}
