"""Synthetic interactions: planted low-rank preferences and power-law item popularity.

Useful for tests (seconds, not minutes) and for scale benchmarks (any size).
"""
from __future__ import annotations

import numpy as np

from .interactions import Interactions


def generate(n_users: int = 200, n_items: int = 300, n_interactions: int = 6000, rank: int = 8,
             popularity_exponent: float = 1.0, seed: int = 0, with_time: bool = True) -> Interactions:
    """Each user draws items with probability ∝ softmax(u·v / T) · popularity^α, so a model
    that learns the planted factors beats popularity, which beats random."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, rank)).astype(np.float32)
    v = rng.normal(size=(n_items, rank)).astype(np.float32)
    pop = (1.0 / np.arange(1, n_items + 1) ** popularity_exponent)[rng.permutation(n_items)]
    per_user = np.maximum(3, rng.poisson(n_interactions / n_users, size=n_users))
    users, items = [], []
    for start in range(0, n_users, 4096):  # chunked so 1M users fit in memory
        block = slice(start, min(start + 4096, n_users))
        logits = u[block] @ v.T / np.sqrt(rank) * 2.0 + np.log(pop)[None, :]
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        for row, p in enumerate(probs):
            k = min(per_user[start + row], n_items // 2)
            chosen = rng.choice(n_items, size=k, replace=False, p=p)
            users.append(np.full(k, start + row)); items.append(chosen)
    user = np.concatenate(users); item = np.concatenate(items)
    ts = rng.permutation(len(user)).astype(np.float64) if with_time else None
    rating = rng.integers(1, 6, size=len(user)).astype(np.float32)
    return Interactions(user, item, n_users, n_items, rating=rating, timestamp=ts)
