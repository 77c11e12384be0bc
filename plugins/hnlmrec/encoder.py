"""A causal LM used as a text encoder (HNLMRec route B is "the LLM as an embedding
model"): pooling, LoRA wrapping, and the pairwise contrastive loss of the official
fine-tuning script."""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F

Pooling = Literal["last", "mean"]

#: LoRA targets per architecture family (the official code adapts the attention projections)
LORA_TARGETS = {"llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
                "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
                "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
                "gpt2": ["c_attn", "attn.c_proj"]}


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Left-padded ids with EOS appended to every text (the pooled token is then the EOS
    for every row, wherever the text ends), truncated from the left to ``max_length``."""
    rows = []
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(ids[-max_length:])
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, width - len(r):] = torch.tensor(r)
        mask[k, width - len(r):] = 1
    return {"input_ids": ids, "attention_mask": mask}


def pooled(model, batch: dict[str, torch.Tensor], pooling: Pooling = "last") -> torch.Tensor:
    """Sentence embeddings ``[B, hidden]`` from the last layer: the last token (left
    padding puts it at position -1) or the masked mean over tokens."""
    mask = batch["attention_mask"]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=pos,
                output_hidden_states=True)
    hidden = out.hidden_states[-1]
    if pooling == "last":
        return hidden[:, -1]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


@torch.no_grad()
def embed(model, tokenizer, texts: Sequence[str], pooling: Pooling = "last",
          batch_size: int = 256, max_length: int = 128, device: Any = "cpu") -> torch.Tensor:
    """Embeddings of many texts, in batches, as a CPU float tensor."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = encode_texts(tokenizer, texts[start:start + batch_size], max_length)
        out.append(pooled(model, {k: v.to(device) for k, v in batch.items()}, pooling).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def pairwise_contrastive_loss(query: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                              tau: float = 0.05) -> torch.Tensor:
    """The official route-B loss: s⁺_b = cos(q_b, p_b)/τ against every in-batch
    s⁻_{b,c} = cos(q_b, n_c)/τ, L = mean_{b,c} −log σ(s⁺_b − s⁻_{b,c})."""
    q, p, n = (F.normalize(x, dim=-1) for x in (query, pos, neg))
    s_pos = (q * p).sum(-1) / tau                 # [B]
    s_neg = q @ n.T / tau                         # [B, B]
    return -F.logsigmoid(s_pos.unsqueeze(1) - s_neg).mean()


def with_lora(model, r: int, alpha: int, dropout: float, seed: int = 0):
    """A LoRA-wrapped copy-free view of ``model``: only the adapters are trainable (peft
    freezes the base weights)."""
    from peft import LoraConfig, TaskType, get_peft_model

    family = getattr(model.config, "model_type", "")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=LORA_TARGETS.get(family), bias="none",
                        task_type=TaskType.FEATURE_EXTRACTION)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def trainable_parameter_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]
