"""TTA4SR (Dang et al., SIGIR 2025): test-time augmentation for sequential recommendation.

Method ``tta4sr`` wraps a zoo backbone (SASRec, GRU4Rec), trained once per (split,
backbone params, seed) and cached, and averages its scores over ``m`` augmented copies of
each user's history. Operators are registered through ``bench_register_augmenters`` (so a
third-party plugin adds its own the same way): the proposed TNoise, TMask-R and TMask-B,
and the classic Mask, Substitute, Crop, Reorder and Insert.
Spec: shared/specs/seq_llmrec.md, part 1.
"""
from __future__ import annotations

import time
import weakref
from typing import Any

import numpy as np

import functools

from harness.api import AugmenterSpec, MethodSpec, TrainResult
from harness.hookspecs import hookimpl
from harness.api import score_ranking

from .backbone import load_or_train
from .operators import SEQUENCE_OPERATORS, neighbour_table, sequence_views, tnoise_views
from .params import OPERATORS, TTAParams
from .selection import select_on_validation
from .wrapper import PartScorer, TTAModel, length_buckets

_NEIGHBOURS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


@hookimpl
def bench_register_methods():
    return [MethodSpec(
        "tta4sr", ("sequential",),
        "TTA4SR (Dang et al. 2025): a frozen SASRec/GRU4Rec scored as the mean over m "
        "augmented histories; operators none, tnoise, tmask_r, tmask_b, mask, substitute, "
        "crop, reorder, insert", params=TTAParams, version="1")]


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method != "tta4sr":
        return None
    p = TTAParams(**params)
    backbone, history, cached = load_or_train(p.backbone, p.backbone_params, dataset, ctx,
                                               seed=p.backbone_seed)
    chosen, selection = select_on_validation(backbone, p, dataset, ctx)
    model = TTAModel(backbone, chosen, ctx.seed)
    # scoring adds its TTA timings to this same dict (see bench_score below)
    model.history = {**{k: float(v) for k, v in history.items() if isinstance(v, (int, float))},
                     "backbone_cached": float(cached), **selection}
    return TrainResult(model, model.history)


OPERATOR_DOCS = {
    "tnoise": "TNoise: uniform noise on the input embeddings / output representation",
    "tmask_r": "TMask-R: remove a share of the history's items",
    "tmask_b": "TMask-B: block a share of positions in attention (needs an attention encoder)",
    "mask": "Mask: replace a share of items with the mask token",
    "substitute": "Substitute: replace a share of items with their most similar item",
    "crop": "Crop: keep a random contiguous part of the history",
    "reorder": "Reorder: shuffle a random contiguous part of the history",
    "insert": "Insert: insert the most similar item before a share of items",
}


@hookimpl
def bench_register_augmenters():
    return [AugmenterSpec(op, functools.partial(augment, op), OPERATOR_DOCS[op], ("sequential",),
                          requires=("attention_mask",) if op == "tmask_b" else ())
            for op in OPERATORS if op != "none"]


def augment(operator: str, batch, params: dict, model, ctx):
    """Augmented views of ``batch`` made by one of TTA4SR's operators."""
    if operator == "tnoise":
        return tnoise_views(batch, model, tuple(params["noise"]), tuple(params["output_noise"]),
                            int(params["n_in"]), int(params["n_out"]))
    fn = SEQUENCE_OPERATORS[operator]
    aux: dict[str, Any] = {}
    if operator in ("substitute", "insert"):
        tables = _NEIGHBOURS.setdefault(model, {})
        key = (params["similarity"], getattr(batch.dataset, "split_id", None))
        if key not in tables:
            t0 = time.perf_counter()
            tables[key] = neighbour_table(model, batch.dataset, params["similarity"])
            tables["seconds"] = tables.get("seconds", 0.0) + time.perf_counter() - t0
        aux["neighbour"] = tables[key]
    elif operator == "mask":
        aux["mask_token"] = batch.mask_token
    elif operator == "tmask_b":
        aux["read_at"] = params["read_at"]
    return sequence_views(fn, batch, int(params["m"]), float(params["ratio"]), **aux)


@hookimpl
def bench_score(model, dataset, part, metrics, ctx):
    if not isinstance(model, TTAModel):
        return None
    scorer = PartScorer(model, dataset, part, ctx)
    result = score_ranking(scorer, dataset, part, metrics, ctx.registry.catalogue.metrics,
                           chunk_size=ctx.eval_chunk_size, device=ctx.device)
    t = scorer.timing
    users = result.topk[0]
    lengths = np.array([len(s) for s in scorer.sequences])
    model.history.update({
        "tta_seconds": t["tta_seconds"], "notta_seconds": t["notta_seconds"],
        "tta_overhead_ratio": t["tta_seconds"] / max(t["notta_seconds"], 1e-9),
        "tta_passes_per_user": t["tta_encoder_passes"] / max(t["tta_users"], 1),
        "tta_copies": float(model.params.copies),
        # Substitute/Insert: building the item-similarity table, paid once per model (in the
        # first repeat only, so min-of-repeats tta_seconds leaves it out when timing_repeats > 1)
        "tta_similarity_seconds": float(_NEIGHBOURS.get(model.backbone, {}).get("seconds", 0.0)),
        **length_buckets(lengths, {m: v for m, v in result.per_user.items()
                                   if m in ("ndcg@10", "hit_rate@10")}, users),
    })
    return result
