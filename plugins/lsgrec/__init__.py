"""LSGRec (Liu et al. 2024, "Towards Unified Modeling for Positive and Negative
Preferences in Sign-Aware Recommendation"): light signed graph convolution on the signed
task. Spec: recsys_graph.md §2.

Paper intent vs code: the rating-regression term is an MSE of prediction vs offset
rating (the code's [B]-vs-[B,1] broadcast is behind ``code_faithful_rating_mse``); the
code has no per-term weights, here ``w_pos``/``w_neg``/``w_rating``/``w_cross`` (all 1).
Ablations: ``high_order_negatives: false`` (Nₗ = 0 for l ≥ 2), ``w_neg: 0``.
"""
from __future__ import annotations

from harness.api import MethodSpec, NonNegativeFloat, TrainResult
from harness.blocks.signed import SignedParams, train_signed
from harness.hookspecs import hookimpl

from .model import LightSignedGCN


class LSGRecParams(SignedParams):
    high_order_negatives: bool = True
    w_pos: NonNegativeFloat = 1.0
    w_neg: NonNegativeFloat = 1.0
    w_rating: NonNegativeFloat = 1.0
    w_cross: NonNegativeFloat = 1.0
    code_faithful_rating_mse: bool = False


@hookimpl
def bench_register_methods():
    return [MethodSpec("lsgrec", ("signed",),
                       "LSGRec: light signed GCN, dislikes propagated along likes, ranking by "
                       "positive embeddings (Liu et al. 2024)", params=LSGRecParams, version="1")]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "lsgrec":
        return None
    p = LSGRecParams(**params)
    model = LightSignedGCN.from_dataset(
        dataset, p.dim, p.n_layers, device=ctx.device,
        high_order_negatives=p.high_order_negatives, reg_weight=p.reg_weight, w_pos=p.w_pos,
        w_neg=p.w_neg, w_rating=p.w_rating, w_cross=p.w_cross,
        code_faithful_rating_mse=p.code_faithful_rating_mse).to(ctx.device)
    return TrainResult(model, train_signed(model, dataset, ctx, p))
