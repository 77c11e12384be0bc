"""CoRA (Liu et al., AAAI 2025, "Collaborative Information Perception by Large Language
Model's Weights for Recommendation") and its comparison arms on the ``ctr`` task.
Spec: seq_llmrec.md part 2 (§2.2–2.7).

Methods (all on the same frozen stage-0 LLM, prompts, Yes-logit BCE and step budget):
``ctr_mf`` (the CF model alone), ``tallrec`` (text-only LoRA), ``collm`` (LoRA + CF soft
tokens), ``cora`` (generated per-sample low-rank increments; ablations through
``cf_input: shuffled|zeroed`` and ``trainable: p_only``). Dataset: ``ml-100k-ctr``.

The spec marks no official-code bug in part 2; the one deliberate departure is size (a
tiny LLaMA pre-trained here instead of Vicuna-7B, a 2-layer Q-Former), see the suite.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.api import (TrainResult, DatasetSpec, MethodSpec, MetricSpec, NonNegativeInt, Params,
                        PositiveFloat, PositiveInt, Rate, Seed, NonNegativeFloat,
                        parse_dataset_params)
from harness.hookspecs import hookimpl
from harness.llm import LLMConfig

from .cf import CFParams

CTR = ("ctr",)


def _tiny_llm() -> LLMConfig:
    return LLMConfig(layers=2, dim=64, heads=4, ffn_mult=2, max_positions=256, sft_steps=300,
                     sft_lr=3e-3, sft_batch_size=32)


class CTRDataParams(Params):
    path: Optional[str] = None            # a local ml-100k copy (atomic files or GroupLens)
    like_threshold: float = Field(4.0, ge=0, le=1000, allow_inf_nan=False)
    history_len: int = Field(10, ge=0, le=100)
    n_train: Optional[PositiveInt] = None
    n_valid: Optional[PositiveInt] = None
    n_test: Optional[PositiveInt] = None
    heldout_frac: float = Field(0.1, gt=0, lt=1, allow_inf_nan=False)
    seed: Seed = 0


class LLMArmParams(Params):
    """What every LLM arm shares (the comparison holds these equal)."""

    lr: Rate = 1e-3
    weight_decay: NonNegativeFloat = 1e-3
    batch_size: PositiveInt = 32
    steps_per_epoch: PositiveInt = 100
    epochs: PositiveInt = 20
    patience: PositiveInt = 3
    warmup_steps: NonNegativeInt = 200
    eval_batch_size: PositiveInt = 128
    pretrain_history_texts: NonNegativeInt = 1500
    llm: LLMConfig = Field(default_factory=_tiny_llm)


class TallRecParams(LLMArmParams):
    lora_r: PositiveInt = 8
    lora_alpha: PositiveInt = 16
    lora_dropout: float = Field(0.05, ge=0, lt=1, allow_inf_nan=False)


class CoLLMParams(TallRecParams):
    cf: CFParams = Field(default_factory=CFParams)


class CoRAParams(LLMArmParams):
    rank: PositiveInt = 8
    alpha: PositiveFloat = 16.0
    dropout: float = Field(0.05, ge=0, lt=1, allow_inf_nan=False)
    num_queries: PositiveInt = 4
    qformer_layers: PositiveInt = 2
    qformer_heads: PositiveInt = 4
    qformer_intermediate: PositiveInt = 256
    qformer_dropout: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    cf_input: Literal["real", "shuffled", "zeroed"] = "real"
    trainable: Literal["all", "p_only"] = "all"
    cf: CFParams = Field(default_factory=CFParams)


PARAMS = {"ctr_mf": CFParams, "tallrec": TallRecParams, "collm": CoLLMParams, "cora": CoRAParams}


@hookimpl
def bench_register_datasets():
    return [DatasetSpec("ml-100k-ctr", CTR,
                        "MovieLens-100k as click-through prediction: label rating>=4, global "
                        "temporal 80/10/10 split, warm/cold flags, prompts with the last 10 "
                        "liked titles (params: path, history_len, n_train, n_valid, n_test, "
                        "heldout_frac, seed)", default_task="ctr")]


@hookimpl
def bench_load_dataset(name: str, params: dict):
    if name != "ml-100k-ctr":
        return None
    from harness.tasks.ctr import load_ml100k_ctr

    p = parse_dataset_params(CTRDataParams, params, name)
    return load_ml100k_ctr(**p.model_dump())


@hookimpl
def bench_register_methods():
    return [
        MethodSpec("ctr_mf", CTR, "MF with BCE on (user, item, like) pairs: CoRA's frozen CF "
                   "model, alone", params=CFParams, version="1"),
        MethodSpec("tallrec", CTR, "TALLRec-style text-only LoRA (r=8) on the frozen tiny LLM, "
                   "Yes-logit BCE", params=TallRecParams, version="1"),
        MethodSpec("collm", CTR, "CoLLM-style: CF soft tokens MLP(e_u), MLP(e_i) before the "
                   "prompt + LoRA", params=CoLLMParams, version="1"),
        MethodSpec("cora", CTR, "CoRA: a Q-Former turns CF embeddings into a unit-norm "
                   "per-sample LoRA factor for every q/k/v/o of the frozen LLM (Liu et al. 2025)",
                   params=CoRAParams, version="1"),
    ]


@hookimpl
def bench_register_metrics():
    from harness.tasks.ctr import BASE_METRICS, SUBSETS

    out = []
    for m in BASE_METRICS:
        for s in SUBSETS:
            where = {"": "all", "_warm": "warm", "_cold": "cold"}[s]
            out.append(MetricSpec(m + s, CTR, ranx=False, needs_cutoff=False,
                                  higher_is_better=m != "logloss",
                                  description=f"{m} on {where} pairs (scikit-learn)"))
    out += [MetricSpec("ppl_base", CTR, ranx=False, needs_cutoff=False, higher_is_better=False,
                       description="perplexity of the frozen LLM on held-out item descriptions"),
            MetricSpec("ppl_after", CTR, ranx=False, needs_cutoff=False, higher_is_better=False,
                       description="the same with the method's change in place (CoRA: "
                                   "increment off; LoRA arms: adapters merged)"),
            MetricSpec("ppl_drift", CTR, ranx=False, needs_cutoff=False, higher_is_better=False,
                       description="ppl_after / ppl_base - 1"),
            MetricSpec("llm_weights_changed", CTR, ranx=False, needs_cutoff=False,
                       higher_is_better=False, description="1 if any base LLM weight differs")]
    return out


@hookimpl
def bench_train(method: str, params: dict, dataset, ctx):
    if method not in PARAMS:
        return None
    from .train import train_method

    model = train_method(method, PARAMS[method](**params), dataset, ctx)
    return TrainResult(model, model.history)


@hookimpl
def bench_score(model, dataset, part, metrics, ctx):
    if getattr(dataset, "task", None) != "ctr" or not hasattr(model, "predict"):
        return None
    from harness.tasks.ctr import score_ctr

    return score_ctr(model, dataset, part, metrics)
