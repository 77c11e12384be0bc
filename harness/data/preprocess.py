"""Preprocessing applied before splitting: rating threshold and k-core filtering."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .interactions import Interactions


def filter_min_rating(data: Interactions, min_rating: Optional[float]) -> Interactions:
    if min_rating is None:
        return data
    if data.rating is None:
        raise ValueError("min_rating given but the dataset has no rating column")
    return data.subset(data.rating >= min_rating).reindex()


def kcore(data: Interactions, k: int) -> Interactions:
    """Iteratively drop users and items with fewer than ``k`` events."""
    if k <= 1:
        return data
    keep = np.ones(len(data), dtype=bool)
    while True:
        u_deg = np.bincount(data.user[keep], minlength=data.n_users)
        i_deg = np.bincount(data.item[keep], minlength=data.n_items)
        new_keep = keep & (u_deg[data.user] >= k) & (i_deg[data.item] >= k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    return data.subset(keep).reindex()
