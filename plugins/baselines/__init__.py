"""Reference baselines: most-popular, BPR matrix factorisation, uniform negatives."""
from __future__ import annotations

import torch
import torch.nn as nn

from harness.api import MethodSpec, SamplerSpec
from harness.blocks.graph import LightGCN
from harness.blocks.negatives import uniform_negatives
from harness.blocks.pairwise import PairwiseParams, bpr_loss, embedding_l2, train_pairwise
from harness.hookspecs import hookimpl

TASKS = ("topk", "signed")


class LightGCNParams(PairwiseParams):
    n_layers: int = 3


class Pop(nn.Module):
    """Scores every item by its training popularity (ties broken by item id downstream)."""

    def __init__(self, popularity) -> None:
        super().__init__()
        self.register_buffer("popularity", torch.as_tensor(popularity, dtype=torch.float32))

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.popularity.unsqueeze(0).expand(len(users), -1).clone()


class MF(nn.Module):
    """Matrix factorisation trained with BPR."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.user.weight)
        nn.init.xavier_normal_(self.item.weight)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user.weight, self.item.weight

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.item.weight.T

    def pairwise_loss(self, users, pos, neg):
        u, p, n = self.user(users), self.item(pos), self.item(neg)
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        return bpr_loss(pos_s, neg_s), embedding_l2(u, p, n)


@hookimpl
def bench_register_methods():
    return [
        MethodSpec("pop", TASKS, "most popular items in training"),
        MethodSpec("bpr_mf", TASKS, "BPR matrix factorisation (Rendle et al. 2009)",
                   params=PairwiseParams, version="1"),
        MethodSpec("lightgcn", TASKS, "LightGCN (He et al. 2020): layer-mean graph propagation + BPR",
                   params=LightGCNParams, version="1"),
    ]


@hookimpl
def bench_register_samplers():
    return [SamplerSpec("uniform", "uniform over the user's non-positive items (RNS)")]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method == "pop":
        return Pop(dataset.item_popularity())
    if method == "bpr_mf":
        p = PairwiseParams(**params)
        model = MF(dataset.n_users, dataset.n_items, p.dim)
        model.history = train_pairwise(model, dataset, ctx, p)
        return model
    if method == "lightgcn":
        p = LightGCNParams(**params)
        model = LightGCN.from_dataset(dataset, p.dim, p.n_layers, device=ctx.device).to(ctx.device)
        model.history = train_pairwise(model, dataset, ctx, p)
        return model
    return None


@hookimpl
def bench_sample_negatives(sampler, params, users, dataset, ctx):
    if sampler != "uniform":
        return None
    return uniform_negatives(dataset.positive_set, users, int(params.get("n", 1)),
                             ctx.rng("sampler.uniform"))
