"""Route B: LoRA adapters are the only trained LLM parameters, and they do move."""
from __future__ import annotations

import torch

from harness.llm import LLMConfig, load_llm
from plugins.hnlmrec.encoder import (encode_texts, pairwise_contrastive_loss, pooled,
                                     trainable_parameter_names, with_lora)


def _llm(tmp_path):
    corpus = ["a red movie", "a blue movie", "a dark drama", "the user likes comedy"]
    return load_llm(LLMConfig(layers=2, dim=32, heads=2, sft_steps=0, cache=False), corpus,
                    cache_dir=tmp_path, device="cpu")


def test_only_lora_parameters_are_trainable_and_base_weights_do_not_move(tmp_path):
    llm = _llm(tmp_path)
    model = with_lora(llm.model, r=4, alpha=8, dropout=0.0)
    names = trainable_parameter_names(model)
    assert names and all("lora_" in n for n in names)
    assert any("q_proj" in n for n in names) and any("o_proj" in n for n in names)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    enc = lambda t: encode_texts(llm.tokenizer, t, 16)  # noqa: E731
    for _ in range(3):
        q = pooled(model, enc(["the user likes comedy", "a dark drama"]))
        p = pooled(model, enc(["a red movie", "a blue movie"]))
        n = pooled(model, enc(["a dark drama", "a red movie"]))
        loss = pairwise_contrastive_loss(q, p, n)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dict(model.named_parameters())
    moved = [n for n in before if not torch.equal(before[n], after[n].detach())]
    assert moved and all("lora_" in n for n in moved)
    assert any("lora_B" in n for n in moved)  # B starts at zero: it must have learned


def test_last_token_pooling_ignores_left_padding(tmp_path):
    llm = _llm(tmp_path)
    llm.model.eval()
    with torch.no_grad():
        alone = pooled(llm.model, encode_texts(llm.tokenizer, ["a red movie"], 16))
        padded = pooled(llm.model, encode_texts(llm.tokenizer, ["a red movie", "the user likes comedy"], 16))
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
