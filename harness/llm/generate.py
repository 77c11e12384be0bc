"""Log-probabilities of responses and batched sampling: what alignment methods need."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


# --- log-probs and sampling used by alignment methods -----------------------------------------

def response_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log p(token_t | tokens_<t) for t = 1..T-1, shape [B, T-1] (position 0 has none).

    Works for left- and right-padded batches (positions come from the attention mask).
    """
    pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos).logits
    logits = logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


@dataclass
class Samples:
    """Sampled responses: ids (left-padded prompt + right-padded response), masks, text."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor  # aligned with input_ids[:, 1:] (the predicted tokens)
    texts: list[str]
    prompt_index: list[int]


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: Sequence[str], n: int = 1,
                     max_new_tokens: int = 64, temperature: float = 1.0,
                     device: torch.device | str = "cpu") -> Samples:
    """``n`` responses per prompt (greedy when ``temperature == 0``), via ``generate``.

    The response mask covers generated tokens up to and including the first EOS.
    Randomness comes from torch's global RNG, which the harness seeds per cell.
    """
    tokenizer.padding_side = "left"
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(device) for k, v in enc.items()}
    was_training = model.training
    model.eval()
    kw = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature > 0 \
        else dict(do_sample=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=n,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         **kw)
    if was_training:
        model.train()
    plen = enc["input_ids"].shape[1]
    gen = out[:, plen:]
    is_eos = gen == tokenizer.eos_token_id
    after_eos = (is_eos.cumsum(-1) - is_eos.long()) > 0  # strictly after the first EOS
    gen_mask = (~after_eos).long()
    gen = torch.where(gen_mask.bool(), gen, torch.full_like(gen, tokenizer.pad_token_id))
    prompt_att = enc["attention_mask"].repeat_interleave(n, 0)
    input_ids = torch.cat([enc["input_ids"].repeat_interleave(n, 0), gen], 1)
    attention_mask = torch.cat([prompt_att, gen_mask], 1)
    response_mask = torch.cat([torch.zeros_like(prompt_att), gen_mask], 1)[:, 1:]
    texts = tokenizer.batch_decode(gen, skip_special_tokens=True)
    return Samples(input_ids, attention_mask, response_mask, texts,
                   [i for i in range(len(prompts)) for _ in range(n)])
