"""UserKNN as a bench plugin: a complete, minimal third-party method.

Two hooks: one tells bench the method exists (with its parameter model, so `bench
validate` checks suites and `bench describe userknn` documents it), one trains it.
Scoring, splits, metrics and tracking come from the harness. Only the public surface is
imported (`harness.api`, `harness.hookspecs`).
"""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from harness.api import Dataset, MethodSpec, Params, PositiveInt, TrainResult
from harness.hookspecs import hookimpl


class UserKNNParams(Params):
    k: PositiveInt = Field(50, description="neighbours kept per user")
    shrink: float = Field(10.0, ge=0, description="shrinks similarities of users with few "
                                                  "items in common")


class UserKNN:
    """A ranking scorer: each user's neighbours' items, weighted by similarity."""

    def __init__(self, train: np.ndarray, similarity: np.ndarray) -> None:
        self.train = torch.from_numpy(train)
        self.similarity = torch.from_numpy(similarity)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.similarity[users] @ self.train


@hookimpl
def bench_register_methods():
    return [MethodSpec("userknn", ("topk",), "user-based kNN with cosine similarity",
                       params=UserKNNParams, version="0.1.0")]


@hookimpl
def bench_train(method, params, dataset: Dataset):
    if method != "userknn":
        return None
    p = UserKNNParams(**params)
    x = dataset.train_matrix.astype(np.float32)
    co = (x @ x.T).toarray()
    norms = np.sqrt(np.diag(co))
    sim = co / (np.outer(norms, norms) + p.shrink + 1e-8)
    np.fill_diagonal(sim, 0.0)
    if p.k < sim.shape[0]:  # keep the k most similar neighbours of each user
        cut = np.partition(sim, -p.k, axis=1)[:, -p.k]
        sim[sim < cut[:, None]] = 0.0
    return TrainResult(UserKNN(x.toarray(), sim.astype(np.float32)), {"neighbours": float(p.k)})
