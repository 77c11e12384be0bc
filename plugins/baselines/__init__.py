"""Reference baselines (the model zoo): most-popular, EASE^R, ItemKNN, BPR-MF, LightGCN,
SASRec, GRU4Rec, and the negative samplers uniform (RNS), popularity, DNS and MixGCF.

Shared maths lives in harness/blocks (graph, pairwise, negatives, sequence); this
package only registers it and maps suite parameters onto it.
"""
from __future__ import annotations

from harness.api import MethodSpec, TrainResult
from harness.blocks.graph import LightGCN
from harness.blocks.pairwise import train_pairwise
from harness.blocks.sequence import GRU4Rec, GRU4RecParams, SASRec, SASRecParams, train_next_item
from harness.hookspecs import hookimpl

from . import samplers
from .models import MF, BPRMFParams, LightGCNParams, Pop
from .neighbourhood import (EASEParams, ItemItemScorer, ItemKNNParams, ease_weights,
                            itemknn_weights)

TASKS = ("topk", "signed")
SEQ_TASKS = ("sequential",)


@hookimpl
def bench_register_methods():
    return [
        MethodSpec("pop", TASKS + SEQ_TASKS, "most popular items in training"),
        MethodSpec("ease", TASKS, "EASE^R (Steck 2019): closed-form item-item ridge regression "
                   "with a zero diagonal; one parameter, lambda", params=EASEParams, version="1"),
        MethodSpec("itemknn", TASKS, "ItemKNN: cosine item-item neighbourhood on the training "
                   "matrix, top-k neighbours per item, optional shrinkage", params=ItemKNNParams,
                   version="1"),
        MethodSpec("bpr_mf", TASKS, "BPR matrix factorisation (Rendle et al. 2009); any sampler "
                   "but mixgcf", params=BPRMFParams, version="2"),
        MethodSpec("lightgcn", TASKS, "LightGCN (He et al. 2020): layer-mean graph propagation + BPR; "
                   "any sampler", params=LightGCNParams, version="2"),
        MethodSpec("sasrec", SEQ_TASKS, "SASRec (Kang & McAuley 2018): causal self-attention, "
                   "next-item CE over all items", params=SASRecParams, version="1"),
        MethodSpec("gru4rec", SEQ_TASKS, "GRU4Rec (Hidasi et al. 2016): GRU over the history, "
                   "next-item CE over all items", params=GRU4RecParams, version="1"),
    ]


@hookimpl
def bench_register_samplers():
    return list(samplers.SPECS)


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method == "pop":
        return Pop(dataset.item_popularity())
    if method == "ease":
        p = EASEParams(**params)
        return ItemItemScorer(dataset.train_matrix, ease_weights(dataset.train_matrix, p.l2))
    if method == "itemknn":
        p = ItemKNNParams(**params)
        return ItemItemScorer(dataset.train_matrix,
                              itemknn_weights(dataset.train_matrix, p.k, p.shrink))
    if method == "bpr_mf":
        p = BPRMFParams(**params)
        model = MF(dataset.n_users, dataset.n_items, p.dim, p.loss, p.margin).to(ctx.device)
        return TrainResult(model, train_pairwise(model, dataset, ctx, p))
    if method == "lightgcn":
        p = LightGCNParams(**params)
        model = LightGCN.from_dataset(dataset, p.dim, p.n_layers, device=ctx.device, loss=p.loss,
                                      margin=p.margin).to(ctx.device)
        return TrainResult(model, train_pairwise(model, dataset, ctx, p))
    if method == "sasrec":
        p = SASRecParams(**params)
        model = SASRec(dataset.n_items, p.dim, p.max_len, p.n_layers, p.n_heads, p.inner,
                       p.dropout, p.attn_dropout).to(ctx.device)
        return TrainResult(model, train_next_item(model, dataset, ctx, p))
    if method == "gru4rec":
        p = GRU4RecParams(**params)
        model = GRU4Rec(dataset.n_items, p.dim, p.max_len, p.hidden, p.n_layers,
                        p.dropout).to(ctx.device)
        return TrainResult(model, train_next_item(model, dataset, ctx, p))
    return None


@hookimpl
def bench_sample_negatives(sampler, params, users, pos_items, model, dataset, ctx):
    return samplers.sample(sampler, params, users, pos_items, model, dataset, ctx)
