"""The compared arms, each a per-task module over the same frozen backbone.

Every arm maps right-padded token ids to the backbone's next-token logits at every
position; the classifier reads the logits of the task's label words at the last real
input token (a verbalizer). Arms differ only in what is trainable:

* ``pt_long`` / ``pt_short``: peft ``PromptTuningConfig`` (CAUSAL_LM), l or m virtual
  tokens initialised from sampled vocabulary rows;
* ``dept``, ``ept``, ``ept_no_fusion``, ``ept_no_multispace``: :class:`DecomposedPrompt`
  in front of the shared frozen backbone;
* ``lora``: peft ``LoraConfig`` on the attention query/value projections;
* ``full_ft``: every backbone weight (the reference).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import parity
from .modules import DecomposedPrompt

PROMPT_ARMS = ("pt_long", "pt_short")
DECOMPOSED_ARMS = ("dept", "ept", "ept_no_fusion", "ept_no_multispace")
ARMS = (*PROMPT_ARMS, *DECOMPOSED_ARMS, "lora", "full_ft")
MATCHED = ("pt_long", *DECOMPOSED_ARMS, "lora")  # sized by the parity equation


def shape_of(backbone: Any, max_length: int) -> parity.Shape:
    conf = backbone.config
    heads = conf.num_attention_heads
    kv_heads = getattr(conf, "num_key_value_heads", None) or heads
    dim = backbone.get_input_embeddings().weight.shape[1]
    return parity.Shape(dim=dim, max_length=max_length, layers=conf.num_hidden_layers,
                        kv_dim=dim // heads * kv_heads)


@dataclass(frozen=True)
class ArmPlan:
    """The sizes an arm is built with, solved from the parity equation."""

    arm: str
    virtual_tokens: int = 0     # prompt tokens in front of the input (input length cost)
    rank: int = 0               # DePT/EPT low-rank update rank, or LoRA rank
    fusion_dim: int = 0
    n_spaces: int = 0
    space_dim: int = 0
    expected_params: int = 0
    budget: int = 0


def plan(arm: str, p: Any, shape: parity.Shape, n_backbone: int) -> ArmPlan:
    """Solve the arm's rank so its trainable count meets l*d; refuse a miss > tolerance."""
    budget = p.budget_length * shape.dim
    if arm == "pt_long":
        out = ArmPlan(arm, p.budget_length, expected_params=budget, budget=budget)
    elif arm == "pt_short":
        out = ArmPlan(arm, p.prompt_length, expected_params=p.prompt_length * shape.dim,
                      budget=budget)
    elif arm in DECOMPOSED_ARMS:
        fusion_dim = p.fusion_dim if arm in ("ept", "ept_no_multispace") else 0
        n_spaces = p.n_spaces if arm in ("ept", "ept_no_fusion") else 0
        space_dim = (p.space_dim or max(1, shape.dim // p.n_spaces)) if n_spaces else 0
        fixed = parity.decomposed_params(shape, p.prompt_length, 0, fusion_dim, n_spaces, space_dim)
        rank = p.rank if p.rank is not None else parity.solve_rank(
            budget, fixed, shape.max_length + shape.dim)
        count = parity.decomposed_params(shape, p.prompt_length, rank, fusion_dim, n_spaces,
                                         space_dim)
        out = ArmPlan(arm, p.prompt_length, rank, fusion_dim, n_spaces, space_dim, count, budget)
    elif arm == "lora":
        per = parity.lora_params(shape, 1)
        rank = p.lora_rank if p.lora_rank is not None else max(1, parity.solve_rank(budget, 0, per))
        out = ArmPlan(arm, 0, rank, expected_params=parity.lora_params(shape, rank), budget=budget)
    elif arm == "full_ft":
        out = ArmPlan(arm, expected_params=n_backbone, budget=budget)
    else:
        raise ValueError(f"unknown arm '{arm}'")
    if arm in MATCHED and p.enforce_parity:
        parity.check(arm, out.expected_params, budget, p.parity_tolerance)
    return out


def sample_vocab_init(backbone: Any, n: int, generator: torch.Generator) -> torch.Tensor:
    """n rows of the (frozen) vocabulary embedding, as peft's SAMPLE_VOCAB init does."""
    emb = backbone.get_input_embeddings().weight.detach()
    idx = torch.randint(0, emb.shape[0], (n,), generator=generator)
    return emb[idx].clone()


class ArmModule(nn.Module):
    """One task's trainable part and how it runs the backbone."""

    def __init__(self, plan_: ArmPlan, backbone: Any, p: Any, generator: torch.Generator) -> None:
        super().__init__()
        from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, get_peft_model

        self.plan = plan_
        self.prefix = plan_.virtual_tokens
        arm = plan_.arm
        self.decomposed: DecomposedPrompt | None = None
        if arm in PROMPT_ARMS:
            cfg = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=plan_.virtual_tokens,
                                     prompt_tuning_init=PromptTuningInit.RANDOM)
            self.model = get_peft_model(copy.deepcopy(backbone), cfg)
            with torch.no_grad():  # SAMPLE_VOCAB, drawn from the cell's stream
                emb = self.model.prompt_encoder["default"].embedding.weight
                emb.copy_(sample_vocab_init(backbone, plan_.virtual_tokens, generator))
        elif arm in DECOMPOSED_ARMS:
            self.backbone = [backbone]  # shared and frozen: kept out of this module's params
            self.decomposed = DecomposedPrompt(
                self._dim(backbone), plan_.virtual_tokens, p.max_length, plan_.rank,
                alpha=p.lowrank_alpha, fusion_dim=plan_.fusion_dim or None,
                fusion_norm=p.fusion_norm, fusion_source=p.fusion_source,
                n_spaces=plan_.n_spaces or None, space_dim=plan_.space_dim, gate=p.gate,
                init=sample_vocab_init(backbone, plan_.virtual_tokens, generator))
        elif arm == "lora":
            cfg = LoraConfig(task_type="CAUSAL_LM", r=plan_.rank, lora_alpha=p.lora_alpha,
                             lora_dropout=0.0, target_modules=list(p.lora_targets))
            self.model = get_peft_model(copy.deepcopy(backbone), cfg)
        else:  # full fine-tuning
            self.model = copy.deepcopy(backbone)
            for w in self.model.parameters():
                w.requires_grad_(True)

    @staticmethod
    def _dim(backbone: Any) -> int:
        return backbone.get_input_embeddings().weight.shape[1]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits [B, prefix + L, V]."""
        if self.decomposed is not None:
            backbone = self.backbone[0]
            embeds = backbone.get_input_embeddings()(input_ids)
            embeds, mask = self.decomposed(embeds, attention_mask)
            return backbone(inputs_embeds=embeds, attention_mask=mask).logits
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def trainable(self) -> list[nn.Parameter]:
        return [w for w in self.parameters() if w.requires_grad]

    def n_trainable(self) -> int:
        return sum(w.numel() for w in self.trainable())

    def param_groups(self, lr: float, lowrank_ratio: float, weight_decay: float) -> list[dict]:
        """DePT's two learning rates: the soft prompt at ``lr``, A/B and EPT's modules at
        ``lr * lowrank_ratio``; every other arm has one group at ``lr``."""
        if self.decomposed is not None:
            prompt, rest = self.decomposed.prompt_groups()
            groups = [{"params": prompt, "lr": lr, "weight_decay": weight_decay}]
            if rest:
                groups.append({"params": rest, "lr": lr * lowrank_ratio,
                               "weight_decay": weight_decay})
            return groups
        return [{"params": self.trainable(), "lr": lr, "weight_decay": weight_decay}]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: w.detach().clone() for n, w in self.named_parameters() if w.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        named = dict(self.named_parameters())
        with torch.no_grad():
            for n, v in state.items():
                named[n].copy_(v)
