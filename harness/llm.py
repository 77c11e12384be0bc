"""The shared tiny-LLM layer: one way to get a (model, tokenizer) pair, offline.

Why it exists: every LLM method (TRPA, UDRRA, HNLMRec, CoRA, StyleVector, EPT) needs a
causal LM and a tokenizer without touching a model hub, and cells that share a config
should share the (slow) warm start instead of redoing it. Two routes, one interface:

* ``LLMConfig(path="/local/ckpt")`` loads a local Hugging Face checkpoint directory
  (``local_files_only``; a hub id is refused because the directory must exist);
* ``LLMConfig(family="llama", layers=2, dim=64, sft_steps=...)`` trains a tokenizer on the
  task's corpus, builds a tiny decoder from a config and warm-starts it by supervised
  fine-tuning on generated (prompt, response) pairs.

Either way :func:`load_llm` returns an :class:`LLM` whose model and tokenizer behave the
same (the config route is saved with ``save_pretrained`` under
``.bench_cache/llm/<content hash>/`` and read back through the path route), so later
cells with the same config, corpus and SFT data reuse it.

Also here, because every alignment method needs them: per-token log-probabilities of a
response under a model (:func:`response_logprobs`), batched sampling
(:func:`sample_responses`), and :class:`Policy`, the object ``bench_align`` receives and
returns (current model + frozen initial model + tokenizer).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence

import torch
from pydantic import Field, model_validator

from .api import BenchError, Params, Rate, Seed

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
#: tokens every tokenizer made here has; structure tags are single tokens (not "special",
#: so decoding keeps them and rule-based scorers can see them)
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>",
                  "unk_token": "<unk>"}
STRUCTURE_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
CACHE_VERSION = "1"


def set_offline() -> None:
    """Make transformers/huggingface_hub/datasets fail instead of downloading."""
    os.environ.update(OFFLINE_ENV)


set_offline()


def llm_device() -> torch.device:
    """``cuda`` when available, CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LLMConfig(Params):
    """The ``llm:`` block a plugin embeds in its params.

    Give either ``path`` (a local checkpoint directory with model and tokenizer) or the
    tiny-config fields. ``sft_steps`` warm-starts either route on the task's generated
    (prompt, response) pairs; ``seed`` fixes the init and SFT (independent of the cell
    seed, so every method of a suite starts from the same policy).
    """

    path: Optional[str] = None
    family: Literal["llama", "gpt2"] = "llama"
    layers: int = Field(2, ge=1, le=12)
    dim: int = Field(64, ge=16, le=2048)
    heads: int = Field(4, ge=1)
    ffn_mult: int = Field(4, ge=1, le=8)
    max_positions: int = Field(256, ge=4)
    tokenizer: Literal["wordlevel", "bpe"] = "wordlevel"
    vocab_size: int = Field(1000, ge=64)  # BPE only; WordLevel keeps every corpus word
    sft_steps: int = Field(300, ge=0)
    sft_lr: Rate = 3e-3
    sft_batch_size: int = Field(32, ge=1)
    seed: Seed = 0
    cache: bool = True

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> "LLMConfig":
        if self.path is None and self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        return self


@dataclass
class LLM:
    """A causal LM with its tokenizer, wherever it came from."""

    model: Any
    tokenizer: Any
    source: str  # "path" | "config" | "cache"
    path: Optional[Path] = None
    info: dict = field(default_factory=dict)


@dataclass
class Policy:
    """What ``bench_align`` receives and returns: the policy being trained, the frozen
    model it started from (the reference for KL and log-ratios), and the tokenizer.
    ``history`` holds per-step curves (name -> list of (step, value))."""

    model: Any
    tokenizer: Any
    init_model: Any
    history: dict[str, list] = field(default_factory=dict)

    @classmethod
    def from_llm(cls, llm: LLM) -> "Policy":
        init = copy.deepcopy(llm.model).eval()
        for p in init.parameters():
            p.requires_grad_(False)
        return cls(llm.model, llm.tokenizer, init)

    def log(self, name: str, step: int, value: float) -> None:
        self.history.setdefault(name, []).append((int(step), float(value)))


# --- tokenizer -----------------------------------------------------------------------------

def train_tokenizer(corpus: Iterable[str], kind: str = "wordlevel", vocab_size: int = 1000,
                    extra_tokens: Sequence[str] = STRUCTURE_TOKENS):
    """A ``PreTrainedTokenizerFast`` trained on ``corpus`` only (no download).

    WordLevel keeps every word of the corpus (best for templated tasks: every token is a
    word, so the vocabulary is small and decoding is exact up to spacing); BPE caps it at
    ``vocab_size``. ``extra_tokens`` are single, non-special tokens (kept when decoding).
    Padding is on the left, as generation and trl's GRPO need.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    corpus = list(corpus)
    if not corpus:
        raise BenchError("train_tokenizer: the corpus is empty.")
    if kind == "wordlevel":
        tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
        trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
        trainer = trainers.BpeTrainer(special_tokens=specials, vocab_size=vocab_size)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.BPEDecoder()
    else:
        raise BenchError(f"unknown tokenizer kind '{kind}' (wordlevel or bpe).")
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, single_word=False) for t in extra_tokens])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", **SPECIAL_TOKENS)
    return fast


# --- model ---------------------------------------------------------------------------------

def build_model(cfg: LLMConfig, tokenizer) -> Any:
    """A freshly initialised tiny decoder sized to ``tokenizer``."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    if cfg.family == "llama":
        conf = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.dim,
                           intermediate_size=cfg.dim * cfg.ffn_mult,
                           num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                           num_key_value_heads=cfg.heads, max_position_embeddings=cfg.max_positions,
                           tie_word_embeddings=True, **ids)
    else:
        conf = GPT2Config(vocab_size=len(tokenizer), n_embd=cfg.dim, n_layer=cfg.layers,
                          n_head=cfg.heads, n_inner=cfg.dim * cfg.ffn_mult,
                          n_positions=cfg.max_positions, tie_word_embeddings=True, **ids)
    model = AutoModelForCausalLM.from_config(conf)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def load_local(path: str | Path, safetensors_only: bool = False) -> tuple[Any, Any]:
    """Model and tokenizer from a local checkpoint directory (never a hub id).

    ``safetensors_only`` (bench's own cache) refuses pickled weights outright; a user's
    checkpoint may hold ``.bin`` weights, which transformers reads with
    ``torch.load(weights_only=True)``, never running code from the file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(path)
    if not path.is_dir():
        raise BenchError(f"llm.path '{path}' is not a local directory; hub ids are not "
                         "allowed (no downloads at run time).")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, **({"use_safetensors": True} if safetensors_only else {}))
    return model, tok


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
        device: torch.device | str = "cpu") -> list[float]:
    """Causal-LM loss on the response tokens (AdamW, warm-up + cosine); returns losses."""
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
    model.eval()
    return losses


# --- loading with a content-hash cache ------------------------------------------------------

def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(cfg: LLMConfig, corpus: Sequence[str], sft_prompts: Sequence[str],
              sft_responses: Sequence[str]) -> str:
    """Content hash of everything the warm-started model depends on."""
    import transformers

    conf = cfg.model_dump(exclude={"cache"})
    return _digest({"v": CACHE_VERSION, "cfg": conf, "corpus": _digest(list(corpus)),
                    "sft": _digest([list(sft_prompts), list(sft_responses)]),
                    "transformers": transformers.__version__, "torch": torch.__version__})[:16]


def load_llm(cfg: LLMConfig | dict, corpus: Sequence[str] = (), sft_prompts: Sequence[str] = (),
             sft_responses: Sequence[str] = (), cache_dir: str | Path = ".bench_cache",
             device: torch.device | str | None = None) -> LLM:
    """(model, tokenizer) from ``cfg``: local path or tiny config, warm-started, cached.

    ``corpus`` trains the tokenizer (config route); SFT uses the prompt/response pairs
    (both routes, when ``cfg.sft_steps > 0``). The result lives under
    ``<cache_dir>/llm/<hash>/`` and is reused by any later call with the same inputs.
    """
    cfg = cfg if isinstance(cfg, LLMConfig) else LLMConfig.model_validate(cfg)
    device = torch.device(device) if device is not None else llm_device()
    warm = cfg.sft_steps > 0 and len(sft_prompts) > 0
    if cfg.path is not None and not warm:
        model, tok = load_local(cfg.path)
        return LLM(model.to(device).eval(), tok, "path", Path(cfg.path))
    if cfg.path is None and not corpus:
        raise BenchError("load_llm: the config route needs a corpus to train the tokenizer.")
    key = cache_key(cfg, corpus, sft_prompts, sft_responses)

    def build(folder: Path | None) -> tuple[Any, Any, dict]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            if cfg.path is not None:
                model, tok = load_local(cfg.path)
            else:
                tok = train_tokenizer(corpus, cfg.tokenizer, cfg.vocab_size)
                model = build_model(cfg, tok)
            losses = sft(model, tok, list(sft_prompts), list(sft_responses),
                         cfg.sft_steps if warm else 0, cfg.sft_lr, cfg.sft_batch_size, cfg.seed,
                         device)
        info = {"key": key, "config": cfg.model_dump(), "vocab": len(tok),
                "params": sum(p.numel() for p in model.parameters()),
                "sft_loss_first": losses[0] if losses else None,
                "sft_loss_last": losses[-1] if losses else None}
        if folder is not None:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            model.save_pretrained(folder, safe_serialization=True)
            tok.save_pretrained(folder)
            (folder / "bench_llm.json").write_text(json.dumps(info, indent=1))
        return model, tok, info

    if not cfg.cache:
        model, tok, info = build(None)
        return LLM(model.to(device).eval(), tok, "config", None, info)

    def load(folder: Path) -> tuple[Any, Any, dict]:
        model, tok = load_local(folder, safetensors_only=True)
        return model, tok, json.loads((folder / "bench_llm.json").read_text())

    from . import cache

    inputs = {"llm": key, "config": cfg.model_dump(exclude={"cache"})}
    (model, tok, info), target, hit = cache.get_or_build(cache_dir, "llm", inputs, build, load,
                                                         key=key)
    return LLM(model.to(device).eval(), tok, "cache" if hit else "config", target, info)


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
