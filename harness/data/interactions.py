"""The interaction data model every recommendation plugin sees."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp


@dataclass
class Interactions:
    """User-item events with dense internal ids (0..n-1) and the original tokens.

    Side information is kept as columns (``user_features``/``item_features``: name ->
    array or list, indexed by internal id) because LLM and OOD methods need it.
    """

    user: np.ndarray  # int64 internal user id per event
    item: np.ndarray  # int64 internal item id per event
    n_users: int
    n_items: int
    rating: Optional[np.ndarray] = None
    timestamp: Optional[np.ndarray] = None
    user_tokens: Optional[np.ndarray] = None  # external id per internal user id
    item_tokens: Optional[np.ndarray] = None
    user_features: dict[str, np.ndarray] = field(default_factory=dict)
    item_features: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int64)
        self.item = np.asarray(self.item, dtype=np.int64)
        if len(self.user) != len(self.item):
            raise ValueError("user and item arrays differ in length")
        if self.user_tokens is None:
            self.user_tokens = np.arange(self.n_users).astype(str)
        if self.item_tokens is None:
            self.item_tokens = np.arange(self.n_items).astype(str)

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask_or_index: np.ndarray) -> "Interactions":
        """Events selected by a mask or index; ids and features are unchanged."""
        pick = lambda a: None if a is None else a[mask_or_index]  # noqa: E731
        return Interactions(self.user[mask_or_index], self.item[mask_or_index], self.n_users,
                            self.n_items, pick(self.rating), pick(self.timestamp),
                            self.user_tokens, self.item_tokens, self.user_features,
                            self.item_features)

    def reindex(self) -> "Interactions":
        """Drop users/items without events and renumber densely (after filtering)."""
        users, u_new = np.unique(self.user, return_inverse=True)
        items, i_new = np.unique(self.item, return_inverse=True)
        feats = lambda f, keep: {k: np.asarray(v)[keep] for k, v in f.items()}  # noqa: E731
        return Interactions(u_new, i_new, len(users), len(items), self.rating, self.timestamp,
                            self.user_tokens[users], self.item_tokens[items],
                            feats(self.user_features, users), feats(self.item_features, items))

    def matrix(self) -> sp.csr_matrix:
        """Binary user x item CSR matrix (duplicates collapsed)."""
        m = sp.csr_matrix((np.ones(len(self.user), dtype=np.float32), (self.user, self.item)),
                          shape=(self.n_users, self.n_items))
        m.data[:] = 1.0
        return m

    def fingerprint(self) -> str:
        """Content hash of the events: part of every split id."""
        h = hashlib.sha256()
        for a in (self.user, self.item, self.rating, self.timestamp):
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        h.update(f"{self.n_users}:{self.n_items}".encode())
        return h.hexdigest()
