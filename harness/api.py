"""Objects plugins return to the harness and receive from it.

A plugin imports only from here (and :mod:`harness.hookspecs` for ``hookimpl``), so this
module is the stable surface; everything else in ``harness`` is implementation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict

#: Task types a dataset entry can declare and a method can support.
TASKS = (
    "topk", "sequential", "signed", "ctr", "medrec", "reasoning", "preference",
    "personalized_generation", "text_classification",
)


class Params(BaseModel):
    """Base for a method's parameter model: unknown keys are errors, so typos surface
    at ``bench validate`` time instead of being silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    tasks: tuple[str, ...]
    description: str = ""
    params: type[BaseModel] = Params
    version: str = "0"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tasks: tuple[str, ...]
    description: str = ""
    default_task: str = "topk"


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    description: str = ""
    #: model kinds the sampler needs (e.g. MixGCF needs a graph model's layer embeddings)
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    """A metric name usable as ``name@k`` (``needs_cutoff``) or bare.

    ``ranx`` metrics are computed by ranx from the top-K lists; others are computed by
    ``compute(topk_items, dataset, part) -> (mean, per_user)``.
    """

    name: str
    tasks: tuple[str, ...] = ("topk", "sequential", "signed")
    ranx: bool = True
    needs_cutoff: bool = True
    higher_is_better: bool = True
    compute: Optional[Callable[..., Any]] = None
    description: str = ""


@dataclass
class ScoreResult:
    """What scoring returns: mean metrics (ranx names, e.g. ``ndcg@10``), per-user
    values for significance tests, and the top-K lists as a TREC run."""

    metrics: dict[str, float]
    per_user: dict[str, dict[str, float]] = field(default_factory=dict)
    topk: Any = None  # (users LongTensor, items LongTensor[n, K]) for ranking tasks
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskData:
    """A non-ranking task's dataset (reasoning puzzles, preference queries, ...).

    Ranking datasets are raw ``Interactions`` that the harness preprocesses and splits;
    generated tasks come with their own train/valid/test parts, so ``bench_load_dataset``
    returns one of these and the runner uses it as it is. ``fingerprint`` identifies the
    content (generator name, its params and seed): the runner derives ``split_id`` from
    it, so cells that share generated data share a split id and a cache.
    """

    name: str
    task: str
    train: Any
    valid: Any
    test: Any
    fingerprint: dict = field(default_factory=dict)
    split_id: str = ""
    protocol: dict = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def part(self, name: str) -> Any:
        if name not in ("train", "valid", "test"):
            raise BenchError(f"unknown split part '{name}' (train, valid or test).")
        return getattr(self, name)


class BenchError(Exception):
    """An error the user can fix (bad input). The CLI prints it without a traceback."""


def parse_params(model: type[BaseModel], params: dict, owner: str) -> BaseModel:
    """Validate a dataset's or component's params, turning pydantic's error into one
    line that names the owner, the key and what is allowed."""
    from pydantic import ValidationError

    try:
        return model.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BenchError(f"{owner} params.{'.'.join(map(str, err['loc']))}: {err['msg']} "
                         f"(allowed: {', '.join(model.model_fields)}).") from None


def parse_dataset_params(model: type[BaseModel], params: dict, dataset: str) -> BaseModel:
    """:func:`parse_params` for a ``bench_load_dataset`` hook: errors name the dataset."""
    return parse_params(model, params, f"dataset '{dataset}'")


class PluginError(BenchError):
    """A plugin is broken (wrong hook signature, duplicate name, ...)."""
