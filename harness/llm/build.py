"""Getting a (model, tokenizer) pair offline, and caching the warm-started result.

Two routes, one interface (:func:`load_llm`): a local checkpoint directory
(``LLMConfig(path=...)``, never a hub id) or a tiny LLaMA/GPT-2 built from a config with a
tokenizer trained on the task's corpus; either may be warm-started by SFT
(:mod:`harness.llm.sft`) and is then saved under ``<cache_dir>/llm/<content hash>/``
through :mod:`harness.cache`, so later cells with the same inputs load it back.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence

import torch
from pydantic import Field, model_validator

from ..api import BenchError, Params, Rate, Seed
from .sft import sft

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
    """What an alignment method trains and returns: the policy being trained, the frozen
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

    from .. import cache

    inputs = {"llm": key, "config": cfg.model_dump(exclude={"cache"})}
    (model, tok, info), target, hit = cache.get_or_build(cache_dir, "llm", inputs, build, load,
                                                         key=key)
    # a fresh build names its cache folder as a loaded one does: trainers that rebuild a
    # reference model from the policy's config (trl's GRPO) find the same weights either way
    model.config._name_or_path = str(target)
    return LLM(model.to(device).eval(), tok, "cache" if hit else "config", target, info)


