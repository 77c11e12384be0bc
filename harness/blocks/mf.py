"""Matrix factorisation trained with a pairwise ranking loss (BPR by default): a shared block because several plugins need the
same MF backbone (the BPR-MF baseline, HNLMRec's MF backbone, ...)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pairwise import embedding_l2, gather_rows, ranking_loss


def _sum_sq(rows: torch.Tensor) -> torch.Tensor:
    flat = rows.reshape(-1)
    return torch.dot(flat, flat)


class _BPRStep(torch.autograd.Function):
    """BPR loss ``-log σ(u·p − u·n)`` (mean over the batch) and the batch's L2
    ``(|u|² + |p|² + |n|²)/2/B`` for matrix factorisation, as one autograd node whose
    backward is written out: dL/dx = −σ(−x)/B per pair, scattered into the two tables.

    Why: a BPR-MF step on ml-100k is ~40 small tensor ops, each paying dispatch and a
    trip through memory; autograd's version of this loss alone is ~25 of them (gathers,
    two products and sums, their backward copies, two zero-filled item gradients added
    together). This node does the same maths in about half the ops. Same values as the
    autograd formulation up to float rounding (u·(p−n) is summed once, the item gradient
    is accumulated in one buffer), so a seed's numbers differ from the plain path in the
    last bits (``tests/test_pairwise_speed.py`` checks values and gradients to 1e-6).
    """

    @staticmethod
    def forward(ctx, user_w, item_w, users, pos, neg, with_reg: bool):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        u, p, n = user_w.index_select(0, users), item_w.index_select(0, pos), item_w.index_select(0, neg)
        diff = p - n
        x = (u * diff).sum(-1)
        loss = -F.logsigmoid(x).mean()
        if with_reg:  # sums of squares as dot products: no squared copies of the rows
            reg = (_sum_sq(u) + _sum_sq(p) + _sum_sq(n)) / 2 / len(users)
            ctx.save_for_backward(users, pos, neg, u, diff, x, p, n)
        else:  # p and n are not needed again: freed now, their memory reused while warm
            reg = loss.new_zeros(())
            ctx.save_for_backward(users, pos, neg, u, diff, x)
        ctx.shapes = (user_w.shape, item_w.shape)
        return loss, reg

    @staticmethod
    def backward(ctx, g_loss, g_reg):  # type: ignore[override]
        users, pos, neg, u, diff, x, *rows = ctx.saved_tensors
        batch = len(users)
        coef = torch.sigmoid(-x)
        coef = coef.mul_(-g_loss / batch if g_loss is not None else 0.0).unsqueeze(1)
        g_user, g_pos = coef * diff, coef * u  # d/dn = -d/dp: index_add_ with alpha=-1 below
        g_neg = None
        if g_reg is not None and rows:  # d reg / d row = row / B, added in place
            p, n = rows
            scale = float(g_reg) / batch
            g_neg = torch.mul(n, scale).sub_(g_pos)
            g_user.add_(u, alpha=scale)
            g_pos.add_(p, alpha=scale)
        grad_user = u.new_zeros(ctx.shapes[0]).index_add_(0, users, g_user)
        grad_item = u.new_zeros(ctx.shapes[1]).index_add_(0, pos, g_pos)
        if g_neg is None:
            grad_item.index_add_(0, neg, g_pos, alpha=-1)
        else:
            grad_item.index_add_(0, neg, g_neg)
        return grad_user, grad_item, None, None, None, None


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
        """(ranking loss, L2 of the batch's embeddings; ``None`` when ``with_reg`` is off).

        BPR with one negative per pair on CPU takes the fused :class:`_BPRStep`; hinge,
        several negatives per pair and other devices take plain autograd."""
        if (self.loss_kind == "bpr" and neg.dim() == 1 and self.user.weight.device.type == "cpu"
                and torch.is_grad_enabled()):
            loss, reg = _BPRStep.apply(self.user.weight, self.item.weight, users, pos, neg, with_reg)
            return loss, (reg if with_reg else None)
        u, p, n = (gather_rows(self.user.weight, users), gather_rows(self.item.weight, pos),
                   gather_rows(self.item.weight, neg))
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        return (ranking_loss(pos_s, neg_s, self.loss_kind, self.margin),
                embedding_l2(u, p, n) if with_reg else None)
