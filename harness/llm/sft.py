"""Supervised warm start: causal-LM loss on the response tokens of (prompt, response) pairs."""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from ..api import BenchError
from .generate import response_logprobs


# --- supervised warm start -----------------------------------------------------------------

def encode_pairs(tokenizer, prompts: Sequence[str], responses: Sequence[str],
                 add_eos: bool = True) -> dict[str, torch.Tensor]:
    """Right-padded ``prompt + response (+eos)`` ids with a mask of the response tokens.

    Prompt and response are tokenised separately and concatenated, so the response's
    tokens are the same whatever the prompt (log-probs of a response are well defined).
    """
    rows, masks = [], []
    for p, r in zip(prompts, responses):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(r, add_special_tokens=False)["input_ids"]
        if add_eos:
            r_ids = r_ids + [tokenizer.eos_token_id]
        rows.append(p_ids + r_ids)
        masks.append([0] * len(p_ids) + [1] * len(r_ids))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    resp = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, :len(r)] = torch.tensor(r)
        att[i, :len(r)] = 1
        resp[i, :len(m)] = torch.tensor(m)
    return {"input_ids": ids, "attention_mask": att, "response_mask": resp}


def sft(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], steps: int,
        lr: float = 3e-3, batch_size: int = 32, seed: int = 0,
        device: torch.device | str = "cpu",
        on_step: Optional[Callable[[int, float], None]] = None) -> list[float]:
    """Causal-LM loss on the response tokens (AdamW, warm-up + cosine); returns losses.

    ``on_step(k, loss)`` is called after optimiser step k (1-based), e.g. to measure a learning
    curve in a pilot; it must leave the model's train/eval mode as it found it."""
    if steps <= 0:
        return []
    if len(prompts) != len(responses) or not prompts:
        raise BenchError("sft: prompts and responses must be non-empty and of equal length.")
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(prompts), (min(batch_size, len(prompts)),), generator=g).tolist()
        batch = encode_pairs(tokenizer, [prompts[i] for i in idx], [responses[i] for i in idx])
        lp = response_logprobs(model, batch["input_ids"].to(device),
                               batch["attention_mask"].to(device))
        mask = batch["response_mask"][:, 1:].to(device).float()
        loss = -(lp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(len(losses), losses[-1])
    model.eval()
    return losses


