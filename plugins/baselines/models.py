"""Non-sequential baseline models and their parameter models."""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn as nn
from pydantic import Field, model_validator

from harness.api import PositiveInt
from harness.blocks.mf import MF  # noqa: F401  (re-export: plugins.baselines.models.MF)
from harness.blocks.pairwise import PairwiseParams

from .samplers import REQUIRES as SAMPLER_REQUIRES


class _SamplerChecked(PairwiseParams):
    """Checks a built-in sampler's params, and that the model provides what the sampler
    needs, at ``bench validate`` time (third-party samplers are checked at train time)."""

    #: attributes the model class provides (matched against SamplerSpec.requires)
    provides: ClassVar[tuple[str, ...]] = ("embeddings",)
    loss: Literal["bpr", "hinge"] = Field(
        "bpr", description="pairwise ranking loss; hinge = HNLMRec's, for controls that hold "
        "the loss fixed")
    margin: float = Field(0.3, gt=0, allow_inf_nan=False, description="hinge margin")

    @model_validator(mode="after")
    def _check_sampler(self):
        # the sampler's name and params are checked by `bench validate` against its
        # SamplerSpec (harness.suite); here only what this model class provides
        if self.sampler in SAMPLER_REQUIRES:
            missing = [r for r in SAMPLER_REQUIRES[self.sampler] if r not in self.provides]
            if missing:
                raise ValueError(f"sampler '{self.sampler}' needs a graph model ({', '.join(missing)}); "
                                 "use it with lightgcn, not with this method")
        return self


class BPRMFParams(_SamplerChecked):
    pass


class LightGCNParams(_SamplerChecked):
    n_layers: PositiveInt = 3
    provides: ClassVar[tuple[str, ...]] = ("embeddings", "layer_embeddings")


class Pop(nn.Module):
    """Scores every item by its training popularity (ties broken by item id downstream)."""

    def __init__(self, popularity) -> None:
        super().__init__()
        self.register_buffer("popularity", torch.as_tensor(popularity, dtype=torch.float32))

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.popularity.unsqueeze(0).expand(len(users), -1).clone()


# MF moved to harness/blocks/mf.py (shared with HNLMRec); re-exported here.
