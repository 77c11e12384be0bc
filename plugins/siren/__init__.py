"""SiReN baseline for the signed task: LightGCN on likes + MLP on dislikes + attention."""
from __future__ import annotations

from harness.api import MethodSpec, PositiveInt, TrainResult
from harness.blocks.signed import SignedParams, train_signed
from harness.hookspecs import hookimpl

from .model import SiReN


class SiReNParams(SignedParams):
    mlp_layers: PositiveInt = 2


@hookimpl
def bench_register_methods():
    return [MethodSpec("siren", ("signed",),
                       "SiReN: LightGCN on likes, MLP on dislikes, attention fusion, sign-aware "
                       "BPR (Seo et al. 2022)", params=SiReNParams, version="1")]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "siren":
        return None
    p = SiReNParams(**params)
    model = SiReN.from_dataset(dataset, p.dim, p.n_layers, device=ctx.device,
                               mlp_layers=p.mlp_layers, reg_weight=p.reg_weight).to(ctx.device)
    return TrainResult(model, train_signed(model, dataset, ctx, p))
