"""The frozen backbone: a tiny decoder pre-trained on unlabelled text from every task.

Built through :func:`harness.llm.load_llm` (tiny config + locally trained tokenizer, or
a local checkpoint path, one code path, cached by content hash under
``.bench_cache/llm/``): its "SFT" data are (empty prompt, text) pairs, i.e. plain
causal-LM pre-training on inputs drawn independently of the labelled splits. Every arm
of a suite therefore starts from byte-identical weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.api import BenchError, TaskData
from harness.llm import LLMConfig, load_llm
from harness.tasks.text_classification import TaskInfo, corpus


def load_backbone(cfg: LLMConfig, data: TaskData, cache_dir: Path | str, device: Any) -> Any:
    texts = list(data.extra.get("pretrain", []))
    llm = load_llm(cfg, corpus=corpus(data), sft_prompts=[""] * len(texts), sft_responses=texts,
                   cache_dir=cache_dir, device=device)
    model = llm.model.eval()
    for w in model.parameters():
        w.requires_grad_(False)
    return llm


def label_ids(tokenizer: Any, info: TaskInfo) -> list[int]:
    """One token id per label word (its first token); distinct, or a clear error."""
    ids = []
    for word in info.label_words:
        toks = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not toks or toks[0] == tokenizer.unk_token_id:
            raise BenchError(f"task '{info.name}': label word '{word}' is not in the "
                             "backbone's vocabulary.")
        ids.append(toks[0])
    if len(set(ids)) != len(ids):
        raise BenchError(f"task '{info.name}': label words {info.label_words} share a first "
                         "token; choose distinct label_words.")
    return ids


def encode(tokenizer: Any, texts: list[str], max_length: int, task: str) -> list[list[int]]:
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    longest = max((len(x) for x in ids), default=0)
    if longest > max_length:
        raise BenchError(f"task '{task}': an input has {longest} tokens, more than max_length "
                         f"{max_length} (the span DePT's low-rank update covers); raise max_length.")
    return ids


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask
