"""Negative sampling for pairwise training: membership tests against a user's training
positives, and the samplers themselves (uniform, popularity, DNS, MixGCF) as plain
functions so any plugin can reuse them; the baselines plugin exposes them as samplers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


def slot_owners(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The user of every slot of ``items`` (``[B]`` or ``[B, n, ...]``, one row per user),
    flattened in row-major order like ``items.reshape(-1)``."""
    return users.reshape(-1, *([1] * (items.dim() - 1))).expand(items.shape).reshape(-1)


class PositiveSet:
    """(user, item) membership of a CSR matrix.

    Small matrices (≤ ``DENSE_LIMIT`` cells, e.g. ml-100k's 1.6M) get a dense boolean
    table: one gather per query, which made negative sampling ~4x cheaper than a binary
    search and was the largest cost of a BPR epoch. Larger ones keep sorted pair keys and
    ``searchsorted`` (memory linear in the positives). Both answer identically.
    """

    DENSE_LIMIT = 1 << 25  # cells (bytes) of the dense table

    def __init__(self, matrix: sp.csr_matrix, dense_limit: int | None = None) -> None:
        coo = matrix.tocoo()
        self.n_items = matrix.shape[1]
        keys = coo.row.astype(np.int64) * self.n_items + coo.col.astype(np.int64)
        self.keys = torch.from_numpy(np.unique(keys))
        limit = self.DENSE_LIMIT if dense_limit is None else dense_limit
        self.dense: torch.Tensor | None = None
        if matrix.shape[0] * matrix.shape[1] <= limit:
            self.dense = torch.zeros(matrix.shape[0] * matrix.shape[1], dtype=torch.bool)
            self.dense[self.keys] = True

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if len(self.keys) == 0:
            return torch.zeros(items.shape, dtype=torch.bool)
        query = users.reshape(-1, *([1] * (items.dim() - 1))) * self.n_items + items
        if self.dense is not None:
            return self.dense[query.expand(items.shape)]
        pos = torch.searchsorted(self.keys, query.reshape(-1)).clamp(max=len(self.keys) - 1)
        return (self.keys[pos] == query.reshape(-1)).reshape(items.shape)

    def resample(self, users: torch.Tensor, items: torch.Tensor, draw, max_rounds: int = 100) -> torch.Tensor:
        """Replace items that are positives of their user by fresh draws from ``draw(n)``.

        Each round draws for every slot still holding a positive, in row-major order, and
        re-tests only those slots (the others are settled): the draws of testing the whole
        batch every round, for a fraction of the work (a few % of slots after round one).
        """
        items = items.clone()
        flat = items.view(-1)
        owners = slot_owners(users, items)
        slots = self.contains(owners, flat).nonzero().squeeze(1)
        for _ in range(max_rounds):
            if len(slots) == 0:
                return items
            fresh = draw(len(slots))
            flat[slots] = fresh
            slots = slots[self.contains(owners[slots], fresh)]
        if len(slots) == 0:
            return items
        raise RuntimeError("could not draw negatives: some users have (almost) every item as a positive")


def uniform_negatives(positives: PositiveSet, users: torch.Tensor, n: int, rng: torch.Generator) -> torch.Tensor:
    """``[len(users), n]`` items drawn uniformly among each user's non-positives."""
    draw = lambda size: torch.randint(positives.n_items, (size,), generator=rng)  # noqa: E731
    items = draw(len(users) * n).reshape(len(users), n)
    return positives.resample(users, items, draw)


def popularity_weights(degree: np.ndarray, beta: float) -> torch.Tensor:
    """Sampling weights ∝ degree^β (β=0: uniform, β=1: raw popularity, 0.75: word2vec)."""
    w = np.asarray(degree, dtype=np.float64) ** beta
    if not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"popularity weights degree^{beta} are not a distribution "
                         "(no item has training interactions?)")
    return torch.from_numpy(w)


def popularity_negatives(positives: PositiveSet, users: torch.Tensor, n: int,
                         weights: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """``[len(users), n]`` items drawn ∝ ``weights`` among each user's non-positives."""
    draw = lambda size: torch.multinomial(weights, size, replacement=True, generator=rng)  # noqa: E731
    items = draw(len(users) * n).reshape(len(users), n)
    return positives.resample(users, items, draw)


def dns_negatives(positives: PositiveSet, users: torch.Tensor, n: int, n_candidates: int,
                  user_emb: torch.Tensor, item_emb: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Dynamic negative sampling (Zhang et al. 2013): for each of the ``n`` negatives, the
    highest-scored of ``n_candidates`` uniform non-positives under the current model.

    Scores are read without gradient: DNS only *selects* items, the loss is plain BPR.
    """
    cand = uniform_negatives(positives, users, n * n_candidates, rng).reshape(len(users), n, n_candidates)
    with torch.no_grad():
        u = user_emb[users].unsqueeze(1).unsqueeze(-1)            # [B, 1, d, 1]
        scores = (item_emb[cand] @ u).squeeze(-1)                # [B, n, M]
    return cand.gather(2, scores.argmax(-1, keepdim=True)).squeeze(2)


@dataclass
class MixedNegatives:
    """MixGCF's synthetic hard negatives (Huang et al. KDD 2021), kept as *recipes* rather
    than vectors so the model can rebuild them with gradients: at hop l the negative is
    αₗ·Pₗ[pos] + (1-αₗ)·Nₗ[itemsₗ] (positive mixing), where itemsₗ is the candidate whose
    mixed hop-l embedding scores highest for the user (hop mixing). ``items`` are real
    non-positive items of the user; only their embeddings are mixed with the positive.
    """

    pos: torch.Tensor    # [B]
    items: torch.Tensor  # [B, n, H]  chosen candidate per negative and hop
    alpha: torch.Tensor  # [B, n, H]  positive-mixing coefficients in (0, 1)

    def hops(self, item_layers: list[torch.Tensor]) -> torch.Tensor:
        """Mixed embeddings per hop, ``[B, n, H, d]``; readout (mean over hops) gives
        the negative's final embedding, hop 0 is its ego part (for L2)."""
        stacked = torch.stack(item_layers, dim=1)                  # [I, H, d]
        h = torch.arange(stacked.shape[1], device=stacked.device)
        neg = stacked[self.items, h]                               # [B, n, H, d]
        pos = stacked[self.pos].unsqueeze(1)                       # [B, 1, H, d]
        a = self.alpha.unsqueeze(-1)
        return a * pos + (1 - a) * neg


def mixgcf_negatives(positives: PositiveSet, users: torch.Tensor, pos: torch.Tensor, n: int,
                     n_candidates: int, user_layers: list[torch.Tensor],
                     item_layers: list[torch.Tensor], rng: torch.Generator) -> MixedNegatives:
    """MixGCF's selection step (official code, ``pool='mean'``): one α per (pair, hop)
    shared by all candidates, the user side is the layer-mean embedding, and the
    argmax over candidates is taken separately at every hop."""
    n_hops = len(item_layers)
    cand = uniform_negatives(positives, users, n * n_candidates, rng).reshape(len(users), n, n_candidates)
    alpha = torch.rand(len(users), n, 1, n_hops, generator=rng)
    with torch.no_grad():
        stacked = torch.stack(item_layers, dim=1)                  # [I, H, d]
        a = alpha.to(stacked.device).unsqueeze(-1)                 # [B, n, 1, H, 1]
        mixed = a * stacked[pos][:, None, None] + (1 - a) * stacked[cand]   # [B, n, M, H, d]
        u = torch.stack(user_layers, 0).mean(0)[users]             # [B, d]
        scores = (mixed * u[:, None, None, None, :]).sum(-1)       # [B, n, M, H]
        best = scores.argmax(2).cpu()                              # [B, n, H]
    return MixedNegatives(pos=pos, items=cand.gather(2, best), alpha=alpha.squeeze(2))
