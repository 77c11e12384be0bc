"""ItemKNN as a bench plugin: a complete, minimal third-party method.

Two hooks: one tells bench the method exists (with its parameter model, so `bench
validate` checks suites), one trains it. Scoring, splits, metrics and tracking come
from the harness.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.api import MethodSpec, Params
from harness.hookspecs import hookimpl


class ItemKNNParams(Params):
    k: int = 50            # neighbours kept per item
    shrink: float = 10.0   # shrinks similarities of rarely co-rated items


class ItemKNN:
    def __init__(self, train, similarity: np.ndarray) -> None:
        self.train = torch.from_numpy(train.toarray())
        self.similarity = torch.from_numpy(similarity)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.train[users] @ self.similarity


@hookimpl
def bench_register_methods():
    return [MethodSpec("itemknn", ("topk",), "item-based kNN with cosine similarity",
                       params=ItemKNNParams, version="0.1.0")]


@hookimpl
def bench_train(method, params, dataset):
    if method != "itemknn":
        return None
    p = ItemKNNParams(**params)
    x = dataset.train_matrix.astype(np.float32)
    co = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(co))
    sim = co / (np.outer(norms, norms) + p.shrink + 1e-8)
    np.fill_diagonal(sim, 0.0)
    if p.k < sim.shape[0]:  # keep the k most similar neighbours of each item
        cut = np.partition(sim, -p.k, axis=0)[-p.k]
        sim[sim < cut[None, :]] = 0.0
    return ItemKNN(x, sim.astype(np.float32))
