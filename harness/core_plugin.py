"""The harness's own plugin: built-in datasets, ranx metrics and the full-ranking scorer.

It is registered like any other plugin (first, so third-party scorers can answer before
the default, which is ``trylast``).
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .api import (RANKING_TASKS, DatasetSpec, MetricSpec, NonNegativeFloat, Params, PositiveInt,
                  Seed, SplitSpec, parse_dataset_params)
from .hookspecs import hookimpl
from .scoring import RANX_METRICS, score_ranking



class _ML100kParams(Params):
    path: str | None = Field(None, description="a local folder (RecBole atomic files or the "
                             "GroupLens u.data layout); must exist")
    url: str | None = Field(None, description="a zip to download once (needs sha256)")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$",
                               description="SHA-256 of the url's file: 64 hex characters")


class _AtomicParams(Params):
    path: str = Field(description="folder with <name>.inter (and optional .user/.item); "
                      "must exist")
    name: str | None = Field(None, pattern=r"^[^/\\]+$", description="file stem (default: "
                             "the folder's name)")


class _SyntheticParams(Params):
    n_users: PositiveInt = 200
    n_items: PositiveInt = 300
    n_interactions: PositiveInt = 6000
    rank: PositiveInt = 8
    popularity_exponent: NonNegativeFloat = 1.0
    seed: Seed = 0


@hookimpl
def bench_register_datasets():
    return [
        DatasetSpec("ml-100k", RANKING_TASKS,
                    "MovieLens-100k (943 users, 1682 items, 100k ratings, user/item side info); "
                    "params: path | url+sha256 (default: the RecBole 1.2.1 wheel's atomic files)",
                    params=_ML100kParams),
        DatasetSpec("atomic", RANKING_TASKS,
                    "any RecBole atomic-file folder; params: path, name", params=_AtomicParams),
        DatasetSpec("synthetic", RANKING_TASKS,
                    "planted low-rank preferences with power-law popularity; params: n_users, "
                    "n_items, n_interactions, rank, popularity_exponent, seed",
                    params=_SyntheticParams),
    ]


@hookimpl
def bench_load_dataset(name: str, params: dict):
    from .data import sources, synthetic

    if name == "ml-100k":
        return sources.load_ml100k(
            **parse_dataset_params(_ML100kParams, params, name).model_dump())
    if name == "atomic":
        p = parse_dataset_params(_AtomicParams, params, name)
        root = Path(p.path)
        return sources.load_local(root, p.name or root.name)
    if name == "synthetic":
        return synthetic.generate(
            **parse_dataset_params(_SyntheticParams, params, name).model_dump())
    return None


@hookimpl
def bench_register_splits():
    from .data import ood, splits

    return [
        SplitSpec("random_ratio", splits.random_ratio,
                  "per-user random split by ratios (RecBole's RS/RO by user); ratios, seed"),
        SplitSpec("leave_one_out", splits.leave_one_out,
                  "per user by time: last event to test, second-to-last to validation"),
        SplitSpec("temporal", splits.temporal,
                  "global chronological split by ratios; unseen users/items dropped from "
                  "valid/test"),
        SplitSpec("popularity_shift", ood.popularity_shift,
                  "OOD: test skewed to unpopular items (options: test_ratio, valid_ratio, "
                  "iid_twin, ...)"),
        SplitSpec("temporal_shift", ood.temporal_shift,
                  "OOD: test from the latest period (options: test_ratio, valid_ratio, iid_twin)"),
        SplitSpec("environment_shift", ood.environment_shift,
                  "OOD: test users from another environment, e.g. age >= 45 (options: feature, "
                  "threshold, iid_twin, ...)"),
    ]


@hookimpl
def bench_register_metrics():
    descriptions = {
        "ndcg": "normalised discounted cumulative gain", "recall": "share of relevant items retrieved",
        "hit_rate": "share of users with at least one hit", "mrr": "mean reciprocal rank",
        "precision": "share of retrieved items that are relevant", "map": "mean average precision",
    }
    from .metrics_beyond import metric_specs as beyond_metrics
    from .signed import metric_specs as signed_metrics

    return [MetricSpec(m, RANKING_TASKS, ranx=True, needs_cutoff=(m != "mrr"),
                       description=descriptions[m] + " (ranx)") for m in RANX_METRICS
            ] + signed_metrics() + beyond_metrics()


@hookimpl(trylast=True)
def bench_score(model, dataset, part, metrics, ctx):
    if dataset.task not in RANKING_TASKS or not (
            hasattr(model, "score") or hasattr(model, "score_sequences")):
        return None
    return score_ranking(model, dataset, part, metrics, ctx.registry.catalogue.metrics,
                         chunk_size=ctx.eval_chunk_size, device=ctx.device)
