"""Matrix factorisation trained with a pairwise ranking loss (BPR by default): a shared block because several plugins need the
same MF backbone (the BPR-MF baseline, HNLMRec's MF backbone, ...)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .pairwise import embedding_l2, gather_rows, ranking_loss


class MF(nn.Module):
    """Matrix factorisation trained with BPR (or hinge: ``loss``/``margin``)."""

    def __init__(self, n_users: int, n_items: int, dim: int, loss: str = "bpr",
                 margin: float = 0.3) -> None:
        super().__init__()
        self.loss_kind, self.margin = loss, margin
        self.n_users, self.n_items = n_users, n_items
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.user.weight)
        nn.init.xavier_normal_(self.item.weight)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user.weight, self.item.weight

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.item.weight.T

    def pairwise_loss(self, users, pos, neg, with_reg: bool = True):
        """(ranking loss, L2 of the batch's embeddings; ``None`` when ``with_reg`` is off)."""
        u, p, n = (gather_rows(self.user.weight, users), gather_rows(self.item.weight, pos),
                   gather_rows(self.item.weight, neg))
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        return (ranking_loss(pos_s, neg_s, self.loss_kind, self.margin),
                embedding_l2(u, p, n) if with_reg else None)
