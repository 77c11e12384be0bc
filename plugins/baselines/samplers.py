"""Negative samplers of the baselines plugin: uniform (RNS), popularity, DNS, MixGCF, and
the signed task's degree sampler (LSGRec's, so a LightGCN control can share it).

The maths lives in :mod:`harness.blocks.negatives` (shared); this module gives each
sampler a strict parameter model and a spec, and dispatches the sampling hook.
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from harness.api import BenchError, Params, SamplerSpec
from harness.blocks.negatives import (dns_negatives, mixgcf_negatives, popularity_negatives,
                                      popularity_weights, uniform_negatives)
from harness.blocks.signed import DegreeNegativeSampler


class UniformParams(Params):
    n: int = Field(1, ge=1, description="negatives per (user, positive) pair: set by the "
                   "harness from the method's n_negatives, never in sampler_params")


class PopularityParams(UniformParams):
    beta: float = Field(1.0, ge=0.0, description="weights ∝ training degree^beta")


class DNSParams(UniformParams):
    n_candidates: int = Field(32, ge=1, description="M uniform candidates scored per negative")


class MixGCFParams(UniformParams):
    n_candidates: int = Field(32, ge=1, description="M uniform candidates mixed per negative")


class DegreeParams(UniformParams):
    exponent: float = Field(0.75, ge=0.0, allow_inf_nan=False,
                            description="weights ∝ training degree^exponent")


PARAMS: dict[str, type[Params]] = {"uniform": UniformParams, "popularity": PopularityParams,
                                   "dns": DNSParams, "mixgcf": MixGCFParams,
                                   "degree": DegreeParams}

SPECS = [
    SamplerSpec("uniform", "uniform over the user's non-positive items (RNS)",
                params=UniformParams),
    SamplerSpec("popularity", "non-positives drawn ∝ training degree^beta; params: beta",
                params=PopularityParams),
    SamplerSpec("dns", "dynamic negative sampling: highest-scored of M uniform candidates "
                       "under the current model; params: n_candidates", params=DNSParams),
    SamplerSpec("degree", "LSGRec's sampler: items the user has not rated in training (either "
                          "sign) drawn ∝ rated degree^exponent; params: exponent",
                params=DegreeParams),
    SamplerSpec("mixgcf", "MixGCF: positive mixing + hop mixing over a graph model's layer "
                          "embeddings; params: n_candidates", requires=("layer_embeddings",),
                params=MixGCFParams),
]
REQUIRES = {s.name: s.requires for s in SPECS}


def parse_params(sampler: str, params: dict) -> Params:
    try:
        return PARAMS[sampler].model_validate(params)
    except Exception as exc:  # pydantic ValidationError: name the sampler and the keys
        raise BenchError(f"sampler '{sampler}' params {params}: {exc}") from None


def sample(sampler: str, params: dict, users: torch.Tensor, pos_items: torch.Tensor,
           model: Any, dataset: Any, ctx: Any) -> Any:
    """Dispatch one sampling call; ``None`` when the sampler is not ours."""
    if sampler not in PARAMS:
        return None
    p = parse_params(sampler, params)
    positives, rng = dataset.positive_set, ctx.rng(f"sampler.{sampler}")
    if sampler == "uniform":
        return uniform_negatives(positives, users, p.n, rng)
    if sampler == "popularity":
        weights = dataset.memo(("popularity_weights", p.beta),
                               lambda: popularity_weights(dataset.item_popularity(), p.beta))
        return popularity_negatives(positives, users, p.n, weights, rng)
    if sampler == "degree":
        # built once per dataset: it indexes every user's rated items, too slow per batch
        sampler = dataset.memo(("degree_sampler", p.exponent),
                               lambda: DegreeNegativeSampler(dataset, p.exponent))
        return sampler.sample(users, p.n, rng)
    if sampler == "dns":
        if not hasattr(model, "embeddings"):
            raise BenchError(f"sampler 'dns' needs a model with embeddings() -> (users, items); "
                             f"{type(model).__name__} has none.")
        with torch.no_grad():
            u, i = model.embeddings()
        return dns_negatives(positives, users.to(u.device), p.n, p.n_candidates, u, i, rng).cpu()
    # mixgcf
    if not hasattr(model, "layer_embeddings"):
        raise BenchError(f"sampler 'mixgcf' needs a graph model with layer_embeddings() (e.g. "
                         f"lightgcn); {type(model).__name__} has none.")
    with torch.no_grad():
        layers = model.layer_embeddings()
    n_users = model.n_users
    return mixgcf_negatives(positives, users, pos_items, p.n, p.n_candidates,
                            [layer[:n_users] for layer in layers],
                            [layer[n_users:] for layer in layers], rng)
