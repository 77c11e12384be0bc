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

Three modules, one job each; every name is importable from ``harness.llm`` as before:

* :mod:`harness.llm.build`: offline set-up, :class:`LLMConfig`, :class:`LLM`,
  :class:`Policy` (what an alignment method trains: current model + frozen initial model
  + tokenizer), tokenizer training, model building, local checkpoints, the content-hash
  cache (:func:`load_llm`, :func:`cache_key`);
* :mod:`harness.llm.sft`: the supervised warm start (:func:`sft`, :func:`encode_pairs`);
* :mod:`harness.llm.generate`: per-token log-probabilities of responses
  (:func:`response_logprobs`) and batched sampling (:func:`sample_responses`).
"""
from __future__ import annotations

from .build import (CACHE_VERSION, LLM, OFFLINE_ENV, SPECIAL_TOKENS, STRUCTURE_TOKENS,  # noqa: F401
                    LLMConfig, Policy, _digest, build_model, cache_key, llm_device, load_llm,
                    load_local, set_offline, train_tokenizer)
from .generate import Samples, response_logprobs, sample_responses  # noqa: F401
from .sft import encode_pairs, sft  # noqa: F401

__all__ = [
    "CACHE_VERSION", "LLM", "LLMConfig", "OFFLINE_ENV", "Policy", "SPECIAL_TOKENS",
    "STRUCTURE_TOKENS", "Samples", "build_model", "cache_key", "encode_pairs", "llm_device",
    "load_llm", "load_local", "response_logprobs", "sample_responses", "set_offline", "sft",
    "train_tokenizer",
]
