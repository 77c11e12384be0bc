"""StyleVector (Zhang et al., ACL 2025, arXiv 2503.05213): training-free personalised
generation by contrastive activation steering, with its baselines, on the
``personalized_generation`` task.

Methods: ``no_personalization``, ``rag_bm25`` (BM25 over the user's history, top-k
prepended), ``lora_per_user`` (one peft LoRA per user) and ``stylevector`` (ablations by
params: ``negatives: none`` = positive mean only, ``negatives: other_users``; sweeps by
fixing ``layer``/``alpha``). Datasets: ``personalization_synth`` (synthetic users whose
style attributes a rule parser recovers exactly) and ``lamp`` (LaMP/LongLaMP-format JSON
from a local path). Every arm personalises the same frozen base LM, built by
:mod:`harness.llm` (tiny LLaMA pre-trained on mostly neutral-style responses, cached by
content hash, or a local checkpoint via ``llm.path``). Lists in ``layer``/``alpha``
(StyleVector) and ``k`` (RAG) are chosen on the validation users' held-out items by the
suite's ``valid_metric``; LoRA's step count is early-stopped the same way.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator

from harness.api import BenchError, DatasetSpec, Fraction, MethodSpec, MetricSpec, Params, \
    PositiveInt, Rate, ScoreResult, Seed, parse_dataset_params
from harness.hookspecs import hookimpl
from harness.llm import LLMConfig, load_llm
from harness.tasks.personalization import (LAMP_TASKS, PersonalizationData, load_lamp,
                                           make_personalization, score_predictions)

TASK = ("personalized_generation",)
Position = Literal["last", "mean_response", "mean_all"]
#: a steering scale: finite; negative values steer away from the user's style
Alpha = Annotated[float, Field(ge=-1000, le=1000, allow_inf_nan=False)]
VERSION = "1"


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _default_llm() -> LLMConfig:
    return LLMConfig(layers=4, dim=128, heads=4, ffn_mult=2, max_positions=128,
                     sft_steps=1500, sft_lr=3e-3, sft_batch_size=32)


class BaseParams(Params):
    llm: LLMConfig = Field(default_factory=_default_llm)
    seed_base_model: bool = Field(True, description="the cell seed seeds the base LM's init and "
                                  "pre-training (so seeds vary training); false: llm.seed")
    max_new_tokens: int = Field(32, ge=1)


class RAGParams(BaseParams):
    k: Union[PositiveInt, list[PositiveInt]] = Field(2, description="retrieved items; a list is chosen on valid")
    index: Literal["input", "output", "both"] = "input"

    @field_validator("k")
    @classmethod
    def _k_list(cls, v):
        v = _as_list(v)
        if not v or min(v) < 1:
            raise ValueError("k must be >= 1")
        return v


class LoRAParams(BaseParams):
    r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    target_modules: Optional[list[str]] = None  # peft's default for the family (q/v proj)
    lr: Rate = 1e-2
    max_steps: int = Field(200, ge=1)
    eval_every: int = Field(20, ge=1)
    patience: int = Field(3, ge=1)


class StyleVectorParams(BaseParams):
    layer: Union[Annotated[int, Field(ge=0, le=1000)], list[Annotated[int, Field(ge=0, le=1000)]]] = Field(default_factory=lambda: [1, 2],
                                         description="0-based block; a list is chosen on valid")
    alpha: Union[Alpha, list[Alpha]] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0])
    position: Union[Position, list[Position]] = Field(
        "last", description="extraction token(s) (a list is chosen on valid); mean_all is the "
        "third-party re-implementation's choice")
    negatives: Literal["model", "none", "other_users"] = "model"
    extractor: Literal["mean_diff", "pca", "logreg"] = "mean_diff"
    all_positions: bool = Field(False, description="also steer the prompt tokens")

    @field_validator("layer", "alpha", "position")
    @classmethod
    def _lists(cls, v):
        v = _as_list(v)
        if not v:
            raise ValueError("give at least one value")
        return v


METHODS = {
    "no_personalization": (BaseParams, "the base LM, no personalisation"),
    "rag_bm25": (RAGParams, "BM25 (bm25s) over the user's history, top-k outputs prepended"),
    "lora_per_user": (LoRAParams, "one peft LoRA adapter per user trained on their history"),
    "stylevector": (StyleVectorParams, "StyleVector: mean activation difference (own - model "
                    "output) added at one layer with scale alpha; training-free"),
}


class SynthParams(Params):
    n_pool_users: int = Field(24, ge=1)
    n_valid_users: int = Field(8, ge=1)
    n_test_users: int = Field(16, ge=2)
    history: int = Field(12, ge=1)
    queries: int = Field(6, ge=1)
    n_pretrain: int = Field(3000, ge=10)
    neutral_share: Fraction = 0.7
    rag_share: Fraction = 0.3
    rag_k: int = Field(2, ge=1)
    seed: Seed = 0


class LampParams(Params):
    questions: str
    outputs: Optional[str] = None
    task: Literal[tuple(LAMP_TASKS)] = "LaMP_4"
    valid_share: float = Field(0.5, ge=0, lt=1, allow_inf_nan=False)
    max_users: Optional[int] = Field(None, ge=2)
    max_history: Optional[int] = Field(None, ge=1)
    seed: Seed = 0


@hookimpl
def bench_register_datasets():
    return [DatasetSpec("personalization_synth", TASK,
                        "synthetic users with independent style attributes, content shared "
                        "across users, held-out attribute combinations",
                        default_task="personalized_generation"),
            DatasetSpec("lamp", TASK, "LaMP/LongLaMP-format JSON from a local path "
                        "(questions + outputs)", default_task="personalized_generation")]


@hookimpl
def bench_load_dataset(name: str, params: dict):
    if name == "personalization_synth":
        return make_personalization(**parse_dataset_params(SynthParams, params, name).model_dump())
    if name == "lamp":
        return load_lamp(**parse_dataset_params(LampParams, params, name).model_dump())
    return None


@hookimpl
def bench_register_methods():
    return [MethodSpec(n, TASK, d, params=p, version=VERSION) for n, (p, d) in METHODS.items()]


@hookimpl
def bench_register_metrics():
    m = [("rouge_1", True, "ROUGE-1 F (rouge-score, Porter stemmer)"),
         ("rouge_l", True, "ROUGE-L F (rouge-score, Porter stemmer)"),
         ("meteor", True, "METEOR without synonyms (nltk, WordNet stubbed)"),
         ("style_acc", True, "share of style attributes the rule parser finds right"),
         ("style_exact", True, "share of outputs with every style attribute right"),
         ("content_acc", True, "polarity word and first aspect right"),
         ("storage_bytes", False, "bytes stored per user by the method"),
         ("added_prompt_tokens", False, "prompt tokens added per query by the method")]
    return [MetricSpec(n, TASK, ranx=False, needs_cutoff=False, higher_is_better=h, description=d)
            for n, h, d in m]


def _arm(method: str, p: BaseParams, llm, data: PersonalizationData, ctx):
    from . import arms

    common = dict(max_new_tokens=p.max_new_tokens, device=ctx.device)
    if method == "no_personalization":
        return arms.NoPersonalization(llm.model, llm.tokenizer, data, **common)
    if method == "rag_bm25":
        return arms.RAGBM25(llm.model, llm.tokenizer, data, ks=p.k, index=p.index, **common)
    if method == "lora_per_user":
        return arms.LoRAPerUser(llm.model, llm.tokenizer, data, r=p.r, lora_alpha=p.lora_alpha,
                                target_modules=p.target_modules, lr=p.lr, max_steps=p.max_steps,
                                eval_every=p.eval_every, patience=p.patience, seed=ctx.seed,
                                **common)
    return arms.StyleVector(llm.model, llm.tokenizer, data, layers=p.layer, alphas=p.alpha,
                            positions=p.position, negatives=p.negatives, extractor=p.extractor,
                            all_positions=p.all_positions, model_key=llm.info.get("key"), **common)


@hookimpl
def bench_train(method, params, dataset, ctx):
    if method not in METHODS:
        return None
    if not isinstance(dataset, PersonalizationData):
        raise BenchError(f"{method} needs a personalized_generation dataset "
                         "(personalization_synth or lamp).")
    p = METHODS[method][0](**params)
    cfg = p.llm.model_copy(update={"seed": ctx.seed}) if p.seed_base_model else p.llm
    prompts, responses = dataset.sft_pairs()
    llm = load_llm(cfg, dataset.corpus(), prompts, responses, cache_dir=ctx.cache_dir,
                   device=ctx.device)
    for q in llm.model.parameters():
        q.requires_grad_(False)
    arm = _arm(method, p, llm, dataset, ctx)
    arm.select(dataset.valid, ctx.valid_metric, ctx.report)
    choice = arm.choice
    if method == "stylevector":
        arm.history.update(chosen_position=float(p.position.index(choice[0])),
                           chosen_layer=float(choice[1]), chosen_alpha=float(choice[2]))
    elif method == "rag_bm25":
        arm.history["chosen_k"] = float(choice)
    arm.history["base_sft_loss_last"] = float(llm.info.get("sft_loss_last") or 0.0)
    return arm


@hookimpl
def bench_score(model, dataset, part, metrics, ctx):
    if getattr(dataset, "task", None) != "personalized_generation" or not hasattr(model, "predict"):
        return None
    users = dataset.part(part)
    predictions = model.predict(users)
    means, per = score_predictions(users, predictions)
    means["storage_bytes"] = sum(model.storage_bytes) / max(1, len(model.storage_bytes))
    means["added_prompt_tokens"] = sum(model.added_tokens) / max(1, len(model.added_tokens))
    keys = [f"{u.uid}/{j}" for u in users for j in range(len(u.queries))]
    per["storage_bytes"] = {f"{u.uid}/{j}": b for u, b in zip(users, model.storage_bytes)
                            for j in range(len(u.queries))}
    per["added_prompt_tokens"] = dict(zip(keys, model.added_tokens))
    # the generations behind the metrics, for the cell's samples.jsonl (bounded by the harness)
    samples = [{"id": f"{u.uid}/{j}", "prompt": q.prompt, "response": out, "reference": q.response}
               for u, outs in zip(users, predictions) for j, (q, out) in enumerate(zip(u.queries, outs))]
    return ScoreResult(metrics=means, per_user=per, extra={"samples": samples})
