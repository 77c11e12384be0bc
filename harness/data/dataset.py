"""A dataset with its frozen split: what ``bench_train`` and ``bench_score`` receive."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse as sp
import torch

from .interactions import Interactions


@dataclass
class Dataset:
    name: str
    task: str
    data: Interactions          # all events after preprocessing
    train_idx: np.ndarray
    valid_idx: np.ndarray
    test_idx: np.ndarray
    split_id: str
    protocol: dict = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    #: signed task only: a rating above the offset is a like (positive link), the rest
    #: are dislikes (negative links); see :mod:`harness.signed` for the convention.
    sign_offset: Optional[float] = None

    def __post_init__(self) -> None:
        if self.task == "signed":
            from ..signed import DEFAULT_SIGN_OFFSET

            if self.data.rating is None:
                raise ValueError(f"dataset '{self.name}': the signed task needs a rating column "
                                 "to split likes from dislikes, and this dataset has none.")
            if self.sign_offset is None:
                self.sign_offset = DEFAULT_SIGN_OFFSET
        elif self.sign_offset is not None:
            raise ValueError(f"dataset '{self.name}': sign_offset is only meaningful for the "
                             f"'signed' task, not '{self.task}'.")

    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` once per key for this dataset (it is immutable once split): how a
        sampler or a block keeps derived arrays (popularity weights, padded histories)
        without writing into the dataset's attributes."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    @property
    def is_signed(self) -> bool:
        return self.task == "signed"

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def part(self, name: str) -> Interactions:
        return self.data.subset({"train": self.train_idx, "valid": self.valid_idx,
                                 "test": self.test_idx}[name])

    @cached_property
    def train(self) -> Interactions:
        return self.part("train")

    def likes(self, name: str, positive: bool = True) -> Interactions:
        """Events of a part with one sign (signed task): likes, or dislikes when
        ``positive`` is False. ``part`` keeps both signs and their ratings."""
        if not self.is_signed:
            raise ValueError(f"dataset '{self.name}' is a '{self.task}' task: it has no "
                             "negative (disliked) events; use task: signed.")
        events = self.train if name == "train" else self.part(name)
        like = events.rating > self.sign_offset
        return events.subset(like if positive else ~like)

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        """Training positives; for the signed task, the liked training events only, so
        sign-unaware methods train on positive edges (LightGCN(pos-only))."""
        return self.likes("train").matrix() if self.is_signed else self.train.matrix()

    @cached_property
    def positive_set(self):
        """Training positives for fast membership tests (negative samplers)."""
        from ..blocks.negatives import PositiveSet

        return PositiveSet(self.train_matrix)

    def matrix(self, name: str) -> sp.csr_matrix:
        """Ground truth of a part (signed task: its liked events only)."""
        if name == "train":
            return self.train_matrix
        return self.likes(name).matrix() if self.is_signed else self.part(name).matrix()

    def negative_matrix(self, name: str) -> sp.csr_matrix:
        """Disliked events of a part (signed task): kept for analysis, never ground truth."""
        return self.likes(name, positive=False).matrix()

    def rated_matrix(self, name: str) -> sp.csr_matrix:
        """Every event of a part, whatever its sign."""
        return self.train.matrix() if name == "train" else self.part(name).matrix()

    def exclusion_matrix(self, name: str) -> sp.csr_matrix:
        """Items never recommended when scoring ``name``: training items, plus
        validation items at test time (they are known interactions, not targets).
        For the signed task, items of both signs are known and masked."""
        known = self.rated_matrix if self.is_signed else self.matrix
        if name == "valid":
            return known("train")
        m = known("train") + known("valid")
        m.data[:] = 1.0
        return m

    def item_popularity(self) -> np.ndarray:
        return np.asarray(self.train_matrix.sum(axis=0)).ravel()

    def train_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Unique (user, item) training pairs as LongTensors."""
        coo = self.train_matrix.tocoo()
        return torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))


def split_id_for(data: Interactions, name: str, preprocess: dict, split: dict) -> str:
    payload = json.dumps({"data": data.fingerprint(), "dataset": name, "preprocess": preprocess,
                          "split": split}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
