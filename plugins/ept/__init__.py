"""EPT (Lan et al., AAAI 2025, arXiv 2405.11464): efficient prompt tuning by multi-space
projection and prompt fusion, against peft prompt tuning, DePT and peft LoRA.

Task: ``text_classification`` (:mod:`harness.tasks.text_classification`): seven
procedurally generated GLUE/SuperGLUE-style tasks (dataset ``glue_synth``) or a GLUE TSV
folder (dataset ``glue_tsv``). One cell trains one soft prompt / adapter per task on a
frozen tiny decoder (pre-trained on unlabelled text from every generator, cached by
content hash) that reads the label word at the last input token, and reports each task's
GLUE metrics, ``mean_score`` and ``task_std``.

Methods (all share :class:`PEFTParams`): ``pt_long`` (l virtual tokens), ``pt_short`` (m),
``dept``, ``ept``, ``ept_no_fusion``, ``ept_no_multispace``, ``lora``, ``full_ft``. The
matched arms are sized by the parity equation (:mod:`plugins.ept.parity`).
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.api import (BenchError, DatasetSpec, MethodSpec, MetricSpec, Params, Rate,
                         parse_dataset_params)
from harness.hookspecs import hookimpl
from harness.llm import LLMConfig
from harness.tasks.text_classification import GENERATORS, TASK, TASK_NAMES

from .arms import ARMS

TASKS = (TASK,)
VERSION = "1"


class GlueSynthParams(Params):
    tasks: list[str] = Field(default_factory=lambda: list(TASK_NAMES), min_length=1)
    n_train: int = Field(1000, ge=2)
    n_valid: int = Field(200, ge=2)
    n_test: int = Field(400, ge=2)
    low_resource_train: int = Field(250, ge=2, description="training examples of cb")
    pretrain_per_task: int = Field(2000, ge=0)
    seed: int = 0


class GlueTsvParams(Params):
    path: str
    task: str = Field(pattern=r"^[a-z_]+$")
    text_columns: list[str | int] = Field(min_length=1)
    label_column: str | int = "label"
    labels: Optional[list[str]] = None
    label_words: Optional[list[str]] = None
    header: bool = True
    metrics: list[Literal["accuracy", "f1", "macro_f1", "mcc"]] = Field(
        default_factory=lambda: ["accuracy"], min_length=1)
    seed: int = 0


def _default_llm() -> LLMConfig:
    return LLMConfig(family="llama", layers=2, dim=64, heads=4, ffn_mult=2, max_positions=128,
                     sft_steps=1500, sft_lr=3e-3, sft_batch_size=32)


class PEFTParams(Params):
    """Budget, sizes and optimiser shared by every arm (arms differ in the method only)."""

    lr: Rate = Field(3e-2, description="main learning rate (soft prompt / adapter / weights)")
    lowrank_lr_ratio: float = Field(0.1, gt=0, le=100,
                                    description="A, B and EPT modules train at lr x this")
    weight_decay: float = Field(1e-5, ge=0)
    batch_size: int = Field(32, ge=1)
    max_steps: int = Field(600, ge=1, description="per task")
    eval_every: int = Field(50, ge=1, description="steps between validation checks")
    patience: int = Field(3, ge=1)
    warmup_steps: int = Field(20, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    max_length: int = Field(48, ge=4, description="s: longest input; the low-rank update covers it")
    budget_length: int = Field(40, ge=1, description="l: the long prompt; parity budget l*d")
    prompt_length: int = Field(8, ge=1, description="m: the short prompt of pt_short/DePT/EPT")
    rank: Optional[int] = Field(None, ge=0, description="DePT/EPT rank; default: from parity")
    lowrank_alpha: float = Field(8.0, gt=0, description="update scale alpha/sqrt(r) (DePT default 8)")
    fusion_dim: int = Field(4, ge=1, description="k of the fusion's d x k query/key maps")
    fusion_norm: bool = False
    fusion_source: Literal["B", "AB"] = "B"
    n_spaces: int = Field(4, ge=1, description="N subspaces of the multi-space projection")
    space_dim: Optional[int] = Field(1, ge=1, description="d_k per subspace (null: d / N)")
    gate: Literal["prompt", "token"] = "prompt"
    lora_rank: Optional[int] = Field(None, ge=1, description="default: from parity")
    lora_alpha: float = Field(8.0, gt=0)
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    enforce_parity: bool = True
    parity_tolerance: float = Field(0.05, gt=0, description="relative miss allowed vs l*d")
    llm: LLMConfig = Field(default_factory=_default_llm)


DESCRIPTIONS = {
    "pt_long": "peft prompt tuning, l virtual tokens (the parity budget l*d)",
    "pt_short": "peft prompt tuning, m virtual tokens (DePT without its update; m*d params)",
    "dept": "DePT: m-token prompt + low-rank update of the input embeddings (rank from parity)",
    "ept": "EPT: DePT + prompt fusion + N-subspace gated projection (rank from parity)",
    "ept_no_fusion": "EPT ablation without prompt fusion",
    "ept_no_multispace": "EPT ablation without the multi-space projection",
    "lora": "peft LoRA on q/v projections (rank from parity)",
    "full_ft": "full fine-tuning of the backbone (reference, not parameter-matched)",
}


@hookimpl
def bench_register_methods():
    return [MethodSpec(a, TASKS, DESCRIPTIONS[a], params=PEFTParams, version=VERSION) for a in ARMS]


@hookimpl
def bench_register_datasets():
    return [
        DatasetSpec("glue_synth", TASKS, "seven generated GLUE/SuperGLUE-style tasks "
                    f"({', '.join(TASK_NAMES)}), balanced labels, fixed seed",
                    default_task=TASK),
        DatasetSpec("glue_tsv", TASKS, "one classification task from a local GLUE-format "
                    "folder (train.tsv, dev.tsv[, test.tsv])", default_task=TASK),
    ]


@hookimpl
def bench_register_metrics():
    specs = [MetricSpec("mean_score", TASKS, ranx=False, needs_cutoff=False,
                        description="mean over tasks of each task's GLUE score"),
             MetricSpec("task_std", TASKS, ranx=False, needs_cutoff=False, higher_is_better=False,
                        description="std of the task scores across tasks"),
             MetricSpec("params_trainable", TASKS, ranx=False, needs_cutoff=False,
                        higher_is_better=False, description="trainable parameters per task"),
             MetricSpec("sec_per_step", TASKS, ranx=False, needs_cutoff=False,
                        higher_is_better=False, description="seconds per optimiser step"),
             MetricSpec("input_tokens", TASKS, ranx=False, needs_cutoff=False,
                        higher_is_better=False,
                        description="mean sequence length the backbone sees (prompt + input)"),
             MetricSpec("tasks_converged", TASKS, ranx=False, needs_cutoff=False,
                        description="share of tasks early-stopped before the step budget")]
    for name, (_, info) in GENERATORS.items():
        for m in info.metric_names() + [f"{name}_score"]:
            specs.append(MetricSpec(m, TASKS, ranx=False, needs_cutoff=False,
                                    description=f"{info.description} ({m})"))
    return specs


@hookimpl
def bench_load_dataset(name: str, params: dict):
    if name == "glue_synth":
        from harness.tasks.text_classification import make_text_classification

        return make_text_classification(
            **parse_dataset_params(GlueSynthParams, params, name).model_dump())
    if name == "glue_tsv":
        from harness.tasks.text_classification import load_glue_tsv

        return load_glue_tsv(**parse_dataset_params(GlueTsvParams, params, name).model_dump())
    return None


@hookimpl
def bench_train(method: str, params: dict, dataset, ctx):
    if method not in ARMS:
        return None
    from .arms import plan, shape_of
    from .backbone import load_backbone
    from .train import train_arm

    if getattr(dataset, "task", None) != TASK:
        raise BenchError(f"{method} needs a '{TASK}' dataset, got '{getattr(dataset, 'task', None)}'.")
    p = PEFTParams(**params)
    device = ctx.device
    llm = load_backbone(p.llm, dataset, ctx.cache_dir, device)
    backbone = llm.model
    shape = shape_of(backbone, p.max_length)
    arm_plan = plan(method, p, shape, sum(w.numel() for w in backbone.parameters()))
    return train_arm(arm_plan, p, backbone, llm.tokenizer, dataset, ctx, device)


@hookimpl
def bench_score(model, dataset, part, metrics, ctx):
    if getattr(dataset, "task", None) != TASK or not hasattr(model, "predict"):
        return None
    from harness.tasks.text_classification import score_text_classification

    return score_text_classification(model, dataset, part)
