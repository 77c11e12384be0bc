"""HNLMRec (Zhao et al. 2025, "Hard Negative Sampling via Large Language Models for
Recommendation"): LLM-made semantic hard negatives mixed into the negatives of a CF model.

One method, ``hnlmrec``, with ``backbone: lightgcn | bpr_mf`` and ``route: A | B``; the
sampled negative that the semantic one is mixed into comes through the sampling hook
(``sampler: uniform`` by default, as in the paper), so the grid {backbone} × {sampler,
HNLMRec A, HNLMRec B} is pure suite configuration. Spec: shared/specs/recsys_graph.md §1.
"""
from __future__ import annotations

import torch

from harness.api import MethodSpec, TrainResult
from harness.blocks.graph import LightGCN
from harness.blocks.mf import MF
from harness.blocks.pairwise import PairwiseParams, train_pairwise
from harness.hookspecs import hookimpl

from . import semantic
from .model import HNLMRecModel
from .params import HNLMRecParams


@hookimpl
def bench_register_methods():
    return [MethodSpec("hnlmrec", ("topk",),
                       "HNLMRec: LLM-driven semantic hard negatives (route A: generated "
                       "descriptions; B: LoRA-tuned LLM encoder supervised by CF-mined negatives) "
                       "mixed into the negatives of LightGCN or BPR-MF",
                       params=HNLMRecParams, version="1")]


def build_backbone(p: HNLMRecParams, dataset, device) -> torch.nn.Module:
    if p.backbone == "lightgcn":
        return LightGCN.from_dataset(dataset, p.dim, p.n_layers, device=device).to(device)
    return MF(dataset.n_users, dataset.n_items, p.dim).to(device)


def pretrainer(p: HNLMRecParams, dataset, ctx):
    """Route B's CF teacher: the same backbone trained with uniform negatives for a few
    epochs, on a quiet copy of the context (its curves are not the cell's)."""

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        quiet = ctx.child(quiet=True)
        model = build_backbone(p, dataset, ctx.device)
        pp = PairwiseParams(dim=p.dim, epochs=p.pretrain_epochs, batch_size=p.batch_size, lr=p.lr,
                            reg_weight=p.reg_weight, sampler="uniform",
                            eval_every=p.pretrain_epochs, patience=1)
        train_pairwise(model, dataset, quiet, pp)
        with torch.no_grad():
            u, i = model.embeddings()
        return u.detach().cpu(), i.detach().cpu()

    return run


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "hnlmrec":
        return None
    p = HNLMRecParams(**params)
    sem = semantic.build(dataset, p, ctx.seed, ctx.cache_dir, device=ctx.device,
                         pretrain_cf=pretrainer(p, dataset, ctx))
    backbone = build_backbone(p, dataset, ctx.device)
    model = HNLMRecModel(backbone, sem, p).to(ctx.device)
    history = train_pairwise(model, dataset, ctx, p)
    users, items = dataset.train_pairs()
    rng = ctx.rng("hnlmrec.diagnostics")
    pick = torch.randperm(len(users), generator=rng)[:4096]
    neg = dataset.positive_set.resample(
        users[pick], torch.randint(dataset.n_items, (len(pick),), generator=rng),
        lambda n: torch.randint(dataset.n_items, (n,), generator=rng))
    model.eval()
    history.update(model.hardness(users[pick].to(ctx.device), items[pick].to(ctx.device),
                                  neg.to(ctx.device)))
    history.update({k: float(v) for k, v in sem.info.items()
                    if isinstance(v, (int, float)) and v is not None})
    history["semantic_from_cache"] = float(sem.source == "cache")
    return TrainResult(model, history)
