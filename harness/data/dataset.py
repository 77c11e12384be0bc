"""A dataset with its frozen split: what ``bench_train`` and ``bench_score`` receive."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

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

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        return self.train.matrix()

    @cached_property
    def positive_set(self):
        """Training positives for fast membership tests (negative samplers)."""
        from ..blocks.negatives import PositiveSet

        return PositiveSet(self.train_matrix)

    def matrix(self, name: str) -> sp.csr_matrix:
        return self.train_matrix if name == "train" else self.part(name).matrix()

    def exclusion_matrix(self, name: str) -> sp.csr_matrix:
        """Items never recommended when scoring ``name``: training items, plus
        validation items at test time (they are known interactions, not targets)."""
        if name == "valid":
            return self.train_matrix
        m = self.train_matrix + self.matrix("valid")
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
