"""Fast membership tests against a user's training positives, for negative samplers."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class PositiveSet:
    """(user, item) membership in a CSR matrix via binary search on sorted pair keys."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        coo = matrix.tocoo()
        self.n_items = matrix.shape[1]
        keys = coo.row.astype(np.int64) * self.n_items + coo.col.astype(np.int64)
        self.keys = torch.from_numpy(np.unique(keys))

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if len(self.keys) == 0:
            return torch.zeros(items.shape, dtype=torch.bool)
        query = users.reshape(-1, *([1] * (items.dim() - 1))) * self.n_items + items
        pos = torch.searchsorted(self.keys, query.reshape(-1)).clamp(max=len(self.keys) - 1)
        return (self.keys[pos] == query.reshape(-1)).reshape(items.shape)

    def resample(self, users: torch.Tensor, items: torch.Tensor, draw, max_rounds: int = 100) -> torch.Tensor:
        """Replace items that are positives of their user by fresh draws from ``draw(n)``."""
        items = items.clone()
        for _ in range(max_rounds):
            bad = self.contains(users, items)
            if not bad.any():
                return items
            items[bad] = draw(int(bad.sum()))
        raise RuntimeError("could not draw negatives: some users have (almost) every item as a positive")


def uniform_negatives(positives: PositiveSet, users: torch.Tensor, n: int, rng: torch.Generator) -> torch.Tensor:
    """``[len(users), n]`` items drawn uniformly among each user's non-positives."""
    draw = lambda size: torch.randint(positives.n_items, (size,), generator=rng)  # noqa: E731
    items = draw(len(users) * n).reshape(len(users), n)
    return positives.resample(users, items, draw)
