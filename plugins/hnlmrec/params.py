"""HNLMRec's parameters: the CF backbone and training loop (pairwise), the route (A: the
LLM writes a hard-negative description; B: a LoRA-tuned LLM encoder emits a hard-negative
embedding), the alignment/mixing knobs, and the tiny LLM's config."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from harness.api import NonNegativeFloat, Rate
from harness.blocks.pairwise import PairwiseParams
from harness.llm import LLMConfig

#: base samplers the semantic negative can be mixed with (MixGCF's recipes can't be)
BASE_SAMPLERS = ("uniform", "popularity", "dns")


class HNLMRecParams(PairwiseParams):
    backbone: Literal["lightgcn", "bpr_mf"] = "lightgcn"
    n_layers: int = Field(3, ge=1, description="LightGCN layers (ignored for bpr_mf)")
    route: Literal["A", "B"] = "B"

    # --- semantic alignment and CF loss (spec §1.2) ---
    alpha: Optional[float] = Field(None, ge=0.0, le=1.0,
                                   description="mixing weight of the semantic negative; default "
                                               "0.1, or 1e-4 with official_code")
    adapter_trainable: Optional[bool] = Field(None, description="default True (paper intent); "
                                              "False with official_code (adapter never optimised)")
    adapter_hidden: int = Field(128, ge=1)
    adapter_objective: Literal["align", "loss"] = Field(
        "align", description="align: the adapter learns LLM→CF space on real items (MSE of "
        "adapter(text embedding of j) to e_j) and the ranking/CL losses see h as a constant; "
        "loss: the adapter is trained by the ranking+CL loss itself, which it minimises by "
        "making h an easy negative (measured: training loss → 0, NDCG at popularity level)")
    align_weight: float = Field(1.0, ge=0.0)
    loss: Literal["hinge", "bpr"] = "hinge"
    margin: NonNegativeFloat = 0.3
    cl_weight: float = Field(1e-3, ge=0.0)
    cl_tau: float = Field(0.2, gt=0.0)
    official_code: bool = Field(False, description="reproduce the released code: frozen adapter, "
                                "alpha 1e-4, ReLU on the adapter output, mean pooling at inference")

    # --- generation budget ---
    negatives_per_user: int = Field(4, ge=1, description="semantic negatives generated per user "
                                    "(for that many of its training positives); every other pair "
                                    "reuses the one whose positive is semantically closest")
    history_titles: int = Field(5, ge=0, description="training titles shown in a user's prompt")
    gen_max_tokens: int = Field(20, ge=1)
    gen_temperature: float = Field(0.7, ge=0.0)
    gen_batch_size: int = Field(256, ge=1)

    # --- route B: CF supervision and LoRA ---
    pretrain_epochs: int = Field(5, ge=1, description="RNS epochs of the CF model that mines targets")
    dns_candidates: int = Field(32, ge=1, description="M candidates for the CF-mined hard negative")
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_steps: int = Field(150, ge=0)
    lora_lr: Rate = 1e-3
    lora_batch_size: int = Field(32, ge=2)
    contrastive_tau: float = Field(0.05, gt=0.0)
    code_tokens: int = Field(16, ge=1, le=64, description="SimHash bits that serialise a CF "
                             "embedding as text tokens in the query")

    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(layers=2, dim=64, heads=4,
                                                              sft_steps=400, max_positions=256))
    cache: bool = True

    @model_validator(mode="after")
    def _check(self) -> "HNLMRecParams":
        if self.n_negatives != 1:
            raise ValueError("hnlmrec mixes one semantic negative into one sampled negative per "
                             "pair: n_negatives must be 1")
        if self.sampler not in BASE_SAMPLERS:
            raise ValueError(f"hnlmrec's base sampler must be one of {', '.join(BASE_SAMPLERS)}, "
                             f"not '{self.sampler}'")
        return self

    @property
    def mix_alpha(self) -> float:
        if self.alpha is not None:
            return self.alpha
        return 1e-4 if self.official_code else 0.1

    @property
    def adapter_is_trainable(self) -> bool:
        if self.adapter_trainable is not None:
            return self.adapter_trainable
        return not self.official_code
