"""LSGRec's light signed graph convolution (Liu et al. 2024; spec recsys_graph.md §2.2).

Two ego tables: E (positive/base) and E⁻₀ (negative base). With per-sign normalised
adjacencies Â⁺ and Â⁻:

    P₁ = Â⁺E,  Pₗ = Â⁺Pₗ₋₁                    (positive preferences)
    N₁ = Â⁻E,  Nₗ = Â⁺Nₗ₋₁                    (dislikes, then spread along likes)
    Z⁺ = mean(E, P₁..P_L),  Z⁻ = mean(E⁻₀, N₁..N_L)

Ranking uses Z⁺ only; Z⁻ shapes E through the negative-space losses. No weight
matrices, no non-linearity: propagation is :func:`harness.blocks.graph.propagate`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from harness.blocks.graph import mean_readout, propagate, signed_adjacency, spmm
from harness.blocks.signed import sampled_scores

from . import losses


class LightSignedGCN(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, n_layers: int,
                 adj_pos: torch.Tensor, adj_neg: torch.Tensor, *,
                 high_order_negatives: bool = True, reg_weight: float = 5e-5,
                 w_pos: float = 1.0, w_neg: float = 1.0, w_rating: float = 1.0,
                 w_cross: float = 1.0, code_faithful_rating_mse: bool = False) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"LSGRec needs at least one layer (N₁ = Â⁻E), got n_layers={n_layers}")
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.adj_pos, self.adj_neg = adj_pos, adj_neg
        self.high_order_negatives = high_order_negatives
        self.reg_weight = reg_weight
        self.w_pos, self.w_neg, self.w_rating, self.w_cross = w_pos, w_neg, w_rating, w_cross
        self.code_faithful_rating_mse = code_faithful_rating_mse
        self.user, self.item = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
        self.user_neg, self.item_neg = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
        for table in (self.user, self.item, self.user_neg, self.item_neg):
            nn.init.xavier_normal_(table.weight)
        self.rating_head = nn.Linear(2 * dim, 1)
        self._cache: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    @classmethod
    def from_dataset(cls, dataset, dim: int, n_layers: int, device="cpu", **kw) -> "LightSignedGCN":
        train = dataset.train
        adj_pos, adj_neg = signed_adjacency(dataset.n_users, dataset.n_items, train.user,
                                            train.item, train.rating > dataset.sign_offset,
                                            device=device)
        return cls(dataset.n_users, dataset.n_items, dim, n_layers, adj_pos, adj_neg, **kw)

    def signed_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z⁺, Z⁻) over users then items."""
        if not self.training and self._cache is not None:
            return self._cache
        ego = torch.cat([self.user.weight, self.item.weight])
        ego_neg = torch.cat([self.user_neg.weight, self.item_neg.weight])
        z_pos = mean_readout(propagate(self.adj_pos, ego, self.n_layers))
        first = spmm(self.adj_neg, ego)
        if self.high_order_negatives:
            neg_layers = propagate(self.adj_pos, first, self.n_layers - 1)
        else:  # ablation: Nₗ = 0 for l ≥ 2, the readout still averages over L+1 slots
            neg_layers = [first] + [torch.zeros_like(first)] * (self.n_layers - 1)
        z_neg = mean_readout([ego_neg] + neg_layers)
        out = (z_pos, z_neg)
        self._cache = None if self.training else out
        return out

    def train(self, mode: bool = True) -> "LightSignedGCN":
        self._cache = None
        return super().train(mode)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        z_pos, _ = self.signed_embeddings()
        return z_pos[users] @ z_pos[self.n_users:].T

    def signed_loss(self, users, items, weights, negatives) -> dict[str, torch.Tensor]:
        """Named, weighted terms (spec §2.3): positive-space BPR with c⁺(w), negative-space
        BPR with c⁻(w), L2 on the propagated embeddings of both spaces (summed over the
        batch, as the code), rating regression on [z⁺_u ‖ z⁺_i], cross decorrelation."""
        z_pos, z_neg = self.signed_embeddings()
        n = self.n_users
        up, un = z_pos[users], z_neg[users]
        pos_p, neg_p, l2_p = sampled_scores(up, z_pos[n:], items, negatives)
        sign = torch.sign(weights)
        terms = {"pos": self.w_pos * losses.positive_bpr(pos_p, neg_p, sign)}
        l2 = l2_p
        if self.w_neg:
            pos_n, neg_n, l2_n = sampled_scores(un, z_neg[n:], items, negatives)
            terms["neg"] = self.w_neg * losses.negative_bpr(pos_n, neg_n, sign)
            l2 = l2 + l2_n
        terms["reg"] = self.reg_weight * l2
        ip, in_ = z_pos[items + n], z_neg[items + n]
        if self.w_rating:
            pred = self.rating_head(torch.cat([up, ip], dim=1))
            terms["rating"] = self.w_rating * losses.rating_mse(pred, weights,
                                                                self.code_faithful_rating_mse)
        if self.w_cross:
            terms["cross"] = self.w_cross * losses.cross_decorrelation(up, un, ip, in_)
        return terms
