"""The LLM arms of the ctr task on one frozen stage-0 LLM, with the same prompts, the
same score (the raw "Yes" logit at the last prompt position), the same BCE loss, the same
optimiser and schedule, and the same step budget; they differ only in what trains:

* ``tallrec``: a peft LoRA (r=8, α=16, dropout 0.05) on q/k/v/o; text only.
* ``collm``:   the same LoRA plus two soft tokens MLP(e_u), MLP(e_i) from the frozen CF
  model, put in front of the prompt (CoLLM-style input-space injection).
* ``cora``:    the LLM stays untouched; a generator turns [e_u; e_i] into a unit-norm
  A_ui and every q/k/v/o gets (α/r)·P(A_uiᵀx) with zero-initialised P (spec §2.4).
  Ablations: ``cf_input`` shuffled across the batch or zeroed; ``trainable: p_only``.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Literal, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.api import BenchError
from harness.llm import LLM, LLMConfig, load_llm
from harness.tasks.ctr import BOS, YES, CTRData, fit_ctr, perplexity

from .cf import CTRMF
from .generator import CollaborativeGenerator
from .plora import inject

Kind = Literal["tallrec", "collm", "cora"]


def stage0_llm(data: CTRData, cfg: LLMConfig, history_texts: int, cache_dir: Any,
               device: Any) -> LLM:
    """The frozen base LLM: a tokenizer trained on the task's text and a causal LM
    pre-trained on *unlabelled* text only (item descriptions except the held-out ones,
    training users' liked-title lists), cached by content hash. It never sees a label."""
    texts = data.pretrain_texts(history_texts, seed=cfg.seed)
    llm = load_llm(cfg, corpus=data.tokenizer_corpus(), sft_prompts=[BOS] * len(texts),
                   sft_responses=texts, cache_dir=cache_dir, device=device)
    for p in llm.model.parameters():
        p.requires_grad_(False)
    return llm


def weights_digest(params: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the bytes of the given tensors (in name order)."""
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(name.encode())
        h.update(params[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, width - len(r):] = torch.tensor(r, dtype=torch.long)
        att[k, width - len(r):] = 1
    return ids, att


class LLMCTR(nn.Module):
    """One LLM arm: ``logits(part, idx)`` is the Yes logit of each chosen pair's prompt."""

    def __init__(self, llm: LLM, data: CTRData, kind: Kind, p: Any, cf: Optional[CTRMF],
                 seed: int, device: Any = "cpu") -> None:
        super().__init__()
        self.kind, self.data, self.tok, self.device = kind, data, llm.tokenizer, device
        self.base_model = llm.model
        self.yes_id = self.tok.convert_tokens_to_ids(YES)
        if self.yes_id is None or self.yes_id == self.tok.unk_token_id:
            raise BenchError(f"the tokenizer has no single '{YES}' token; the ctr score is its logit.")
        # references to the frozen base weights (the same tensors stay inside any wrapper)
        self._base_params = dict(llm.model.named_parameters())
        self.base_digest = weights_digest(self._base_params)
        self.cf = cf
        self.seed = seed
        self.cf_input_mode = getattr(p, "cf_input", "real")
        hidden = llm.model.config.hidden_size
        if kind in ("tallrec", "collm"):
            from peft import LoraConfig, TaskType, get_peft_model

            conf = LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                              task_type=TaskType.CAUSAL_LM)
            self.lm = get_peft_model(llm.model, conf)
            if kind == "collm":
                d = cf.user.weight.shape[1]
                self.soft = nn.Sequential(nn.Linear(d, 2 * hidden), nn.GELU(),
                                          nn.Linear(2 * hidden, hidden))
        elif kind == "cora":
            self.lm = llm.model
            self.increment, self.wrapped = inject(llm.model, p.rank, p.alpha, p.dropout)
            self.generator = CollaborativeGenerator(
                cf.user.weight.shape[1], self.wrapped[0].base.in_features, p.rank,
                p.num_queries, p.qformer_layers, p.qformer_heads, p.qformer_intermediate,
                p.qformer_dropout)
            if p.trainable == "p_only":
                for q in self.generator.parameters():
                    q.requires_grad_(False)
        else:
            raise BenchError(f"unknown ctr LLM arm '{kind}'.")
        self.to(device)
        self._ids = {}

    # -- inputs --------------------------------------------------------------------------
    def token_ids(self, part: str) -> list[list[int]]:
        """The part's prompts as token ids, tokenised once per tokenizer and kept on the
        dataset object, so the cells of a suite (which share it) do not redo it."""
        if part not in self._ids:
            cache = self.data.extra.setdefault("ctr_token_ids", {})
            key = (part, self._vocab_key())
            if key not in cache:
                prompts = self.data.prompts(self.data.part(part))
                cache[key] = self.tok(prompts, add_special_tokens=False)["input_ids"]
            self._ids[part] = cache[key]
        return self._ids[part]

    def _vocab_key(self) -> str:
        vocab = sorted(self.tok.get_vocab().items())
        return hashlib.sha256(repr(vocab).encode()).hexdigest()[:16]

    def cf_rows(self, part: str, idx: np.ndarray, shuffle: Optional[torch.Generator]) -> torch.Tensor:
        p = self.data.part(part)
        users = torch.from_numpy(p.user[idx]).to(self.device)
        items = torch.from_numpy(p.item[idx]).to(self.device)
        x = self.cf.cf_input(users, items)
        if self.cf_input_mode == "shuffled" and len(idx) > 1:
            x = x[torch.randperm(len(idx), generator=shuffle).to(self.device)]
        elif self.cf_input_mode == "zeroed":
            x = torch.zeros_like(x)
        return x

    def logits(self, part: str, idx: np.ndarray, shuffle: Optional[torch.Generator] = None
               ) -> torch.Tensor:
        ids, att = left_pad([self.token_ids(part)[k] for k in idx], self.tok.pad_token_id)
        ids, att = ids.to(self.device), att.to(self.device)
        if self.kind == "collm":
            x = self.cf_rows(part, idx, shuffle)
            d = x.shape[1] // 2
            soft = torch.stack([self.soft(x[:, :d]), self.soft(x[:, d:])], 1)
            emb = self.lm.get_input_embeddings()(ids)
            emb = torch.cat([soft.to(emb.dtype), emb], 1)
            att = torch.cat([torch.ones_like(att[:, :2]), att], 1)
            pos = (att.cumsum(-1) - 1).clamp(min=0)
            out = self.lm(inputs_embeds=emb, attention_mask=att, position_ids=pos, logits_to_keep=1)
            return out.logits[:, -1, self.yes_id].float()
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        if self.kind == "cora":
            a = self.generator(self.cf_rows(part, idx, shuffle))
            with self.increment.use(a):
                out = self.lm(input_ids=ids, attention_mask=att, position_ids=pos, logits_to_keep=1)
        else:
            out = self.lm(input_ids=ids, attention_mask=att, position_ids=pos, logits_to_keep=1)
        return out.logits[:, -1, self.yes_id].float()

    # -- the task's model interface ----------------------------------------------------------
    @torch.no_grad()
    def predict(self, data: CTRData, part: str, batch_size: int = 0) -> np.ndarray:
        """Logits for every pair; batches of similar prompt length (less padding)."""
        if data is not self.data:
            raise BenchError("this ctr model was trained on another dataset object.")
        was = self.training
        self.eval()
        lengths = np.array([len(r) for r in self.token_ids(part)])
        order = np.argsort(lengths, kind="stable")
        out = np.empty(len(order), dtype=np.float64)
        batch_size = batch_size or getattr(self, "eval_batch_size", 128)
        g = torch.Generator().manual_seed(self.seed + 7919)  # the shuffled ablation at eval
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            out[b] = self.logits(part, b, g).cpu().numpy()
        self.train(was)
        return out

    @torch.no_grad()
    def preservation(self, data: CTRData) -> dict[str, float]:
        """Perplexity on held-out item descriptions: the frozen base (increment or
        adapters off) vs what the method leaves behind (CoRA: nothing, the increment
        is off without CF input; LoRA arms: the adapters merged in). Also whether any
        base weight changed (bit-level)."""
        texts = data.heldout_texts()
        changed = float(weights_digest(self._base_params) != self.base_digest)
        if self.kind == "cora":
            with self.increment.use(None):
                base = perplexity(self.lm, self.tok, texts, device=self.device)
            after = base
        else:
            with self.lm.disable_adapter():
                base = perplexity(self.lm, self.tok, texts, device=self.device)
            after = perplexity(self.lm, self.tok, texts, device=self.device)
            merged_differs = any(bool(p.abs().sum() > 0) for n, p in self.lm.named_parameters()
                                 if "lora_B" in n)
            changed = max(changed, float(merged_differs))
        return {"ppl_base": base, "ppl_after": after, "ppl_drift": after / base - 1.0,
                "llm_weights_changed": changed}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [q for q in self.parameters() if q.requires_grad]


def train_llm_ctr(model: LLMCTR, data: CTRData, ctx: Any, p: Any) -> dict[str, Any]:
    """AdamW with a linear warm-up from 1% of ``lr`` and a cosine decay to 8% of it over
    the whole budget (spec §2.5's shape), ``steps_per_epoch`` batches per epoch,
    validation AUC after every epoch, early stopping with ``patience``."""
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    total = p.epochs * p.steps_per_epoch
    warm = max(1, p.warmup_steps)

    def factor(step: int) -> float:
        if step < warm:
            return 0.01 + 0.99 * step / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.08 + 0.92 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    g = ctx.rng("ctr.batches")
    shuffle = ctx.rng("ctr.cf_shuffle")
    labels = torch.from_numpy(data.train.label)
    n = len(data.train)
    state = {"order": torch.randperm(n, generator=g), "pos": 0}

    def next_batch() -> np.ndarray:
        if state["pos"] + p.batch_size > n:
            state["order"], state["pos"] = torch.randperm(n, generator=g), 0
        b = state["order"][state["pos"]:state["pos"] + p.batch_size]
        state["pos"] += p.batch_size
        return b.numpy()

    def epoch(_e: int) -> float:
        total_loss = 0.0
        for _ in range(p.steps_per_epoch):
            idx = next_batch()
            logit = model.logits("train", idx, shuffle)
            loss = F.binary_cross_entropy_with_logits(logit, labels[idx].to(logit.device))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total_loss += float(loss.detach())
        return total_loss / p.steps_per_epoch

    return fit_ctr(model, epoch, data, ctx, p.epochs, p.patience)
