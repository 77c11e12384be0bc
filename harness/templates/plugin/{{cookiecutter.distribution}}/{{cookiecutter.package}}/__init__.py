"""{{ cookiecutter.description }}: the method ``{{ cookiecutter.method }}``.

A starting point made by ``bench new-plugin``: popularity blended with each user's own
item co-occurrences. Replace ``train`` with your method; keep the hook shapes. A plugin
imports only the harness's public surface (``harness.api``, ``harness.hookspecs`` and the
shared blocks ``harness.blocks``, ``harness.llm``, ``harness.tasks``).
"""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from harness.api import Dataset, MethodSpec, Params, TrainResult
from harness.hookspecs import hookimpl

METHOD = "{{ cookiecutter.method }}"


class {{ cookiecutter.method | title | replace('_', '') }}Params(Params):
    """Unknown keys are errors at ``bench validate`` time; every field says what it does."""

    alpha: float = Field(0.5, ge=0.0, le=1.0,
                         description="weight of co-occurrence scores against popularity")


class CooccurrencePopularity:
    """A ranking scorer: ``score(users) -> [len(users), n_items]``; the harness masks
    known items and ranks."""

    def __init__(self, train: torch.Tensor, item_item: torch.Tensor, popularity: torch.Tensor,
                 alpha: float) -> None:
        self.train, self.item_item, self.popularity, self.alpha = train, item_item, popularity, alpha

    def score(self, users: torch.Tensor) -> torch.Tensor:
        personal = self.train[users] @ self.item_item
        return self.alpha * personal + (1 - self.alpha) * self.popularity.expand(len(users), -1)


def train(dataset: Dataset, p: {{ cookiecutter.method | title | replace('_', '') }}Params) -> TrainResult:
    x = dataset.train_matrix.astype(np.float32)
    co = (x.T @ x).toarray()
    np.fill_diagonal(co, 0.0)
    co /= max(float(co.max()), 1.0)
    popularity = dataset.item_popularity().astype(np.float32)
    popularity /= max(float(popularity.max()), 1.0)
    model = CooccurrencePopularity(torch.from_numpy(x.toarray()), torch.from_numpy(co),
                                   torch.from_numpy(popularity)[None, :], p.alpha)
    return TrainResult(model, {"n_train_pairs": float(x.nnz)})


@hookimpl
def bench_register_methods():
    return [MethodSpec(METHOD, ("topk",), "{{ cookiecutter.description }}",
                       params={{ cookiecutter.method | title | replace('_', '') }}Params, version="1")]


@hookimpl
def bench_train(method, params, dataset):  # take only the hook arguments you need
    if method != METHOD:
        return None  # not ours: another plugin answers
    return train(dataset, {{ cookiecutter.method | title | replace('_', '') }}Params(**params))
