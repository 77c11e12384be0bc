"""The public surface of bench: what plugins return to the harness and receive from it.

A plugin imports from here, :mod:`harness.hookspecs` (``hookimpl``) and the shared
building blocks (:mod:`harness.blocks`, :mod:`harness.llm`, :mod:`harness.tasks`); a test
(``tests/test_boundary.py``) holds every plugin under ``plugins/`` to that. What is here:

* specs a plugin registers: :class:`MethodSpec`, :class:`DatasetSpec`,
  :class:`SamplerSpec`, :class:`MetricSpec`, :class:`SplitSpec`, :class:`AugmenterSpec`;
* what the hooks receive: :class:`Interactions` (raw events, what ``bench_load_dataset``
  returns), :class:`Dataset` (a frozen split: what a sampler or model may read:
  ``train_matrix``, ``positive_set``, ``item_popularity()``, ``train_pairs()``,
  ``memo(key, build)``), :class:`TaskData` (a generated task), :class:`Context`;
* what they return: :class:`TrainResult` ``(model, history)``, :class:`ScoreResult`, and
  models of the kinds the scorers understand: :class:`RankingScorer`,
  :class:`SequenceModel`, :class:`PolicyModel`;
* parameters: :class:`Params` (strict), the bounded types (:data:`PositiveInt`,
  :data:`Rate`, ...), :func:`resolve_params`, :func:`parse_params`;
* the full-ranking evaluation pieces a custom scorer reuses (:func:`score_ranking`,
  :func:`full_ranking_topk`, :func:`ranx_evaluate`, :func:`max_cutoff`,
  :class:`HeldOutPositives`), the metric-name mapping (:func:`mlflow_name`), the content
  cache (:func:`get_or_build`, :func:`content_key`) and errors.

The heavy names (``Dataset``, ``Context``, the scorer functions) are imported on first
use, so ``from harness.api import MethodSpec`` stays cheap.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Annotated, Any, Callable, Iterator, Optional, Protocol,
                    runtime_checkable)

from pydantic import BaseModel, ConfigDict, Field

from .names import metric_name_from_mlflow, mlflow_name  # noqa: F401  (public)

if TYPE_CHECKING:  # the lazily exported names, for type checkers
    import torch

    from .cache import content_key, get_or_build
    from .context import Context
    from .data.dataset import Dataset
    from .data.interactions import Interactions
    from .metrics_beyond import HeldOutPositives
    from .scoring import MetricName, full_ranking_topk, max_cutoff, ranx_evaluate, score_ranking

#: the ranking tasks: scored by full ranking over all items (the harness's default scorer)
RANKING_TASKS = ("topk", "sequential", "signed")

#: Task types a dataset entry can declare and a method can support.
TASKS = (
    "topk", "sequential", "signed", "ctr", "medrec", "reasoning", "preference",
    "personalized_generation", "text_classification",
)


class Params(BaseModel):
    """Base for a method's parameter model: unknown keys are errors, so typos surface
    at ``bench validate`` time instead of being silently ignored. NaN and infinity are
    refused in every float field (``allow_inf_nan=False``): they never make sense as a
    setting and would otherwise train to garbage recorded as finished.

    A field may carry an alias for a name Python reserves (``lambda_: float =
    Field(1.0, alias="lambda")``): the suite writes ``lambda``, the plugin receives and
    MLflow logs ``lambda`` (:func:`resolve_params`), and the field name works too."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


def resolve_params(model: type[BaseModel], params: dict, catalogue: Any = None) -> dict[str, Any]:
    """Validate ``params`` and fill in defaults, keyed as the user writes them (aliases
    where a field has one): what the runner hands ``bench_train`` and logs.

    ``catalogue`` (at ``bench validate`` time) reaches the model's validators as
    ``info.context["catalogue"]``, so a param naming another plugin part (a sampler, an
    augmentation operator) can be checked against what is installed."""
    context = {"catalogue": catalogue} if catalogue is not None else None
    return model.model_validate(params, context=context).model_dump(by_alias=True)


def param_names(model: type[BaseModel]) -> list[str]:
    """The keys a suite may use for ``model``: each field's alias, or its name."""
    return [f.alias or name for name, f in model.model_fields.items()]


# --- bounded parameter types -------------------------------------------------------------
# Every numeric parameter of a params model carries a bound, so `bench validate` refuses
# `epochs: 0`, `lr: 1e30` or `seed: 2**64` before anything runs. Use these instead of bare
# ``int``/``float``; they combine with ``Field(default, description=...)`` as usual, e.g.
# ``epochs: PositiveInt = Field(50, description="...")``.

#: counts and sizes that must be at least 1: epochs, dims, batch sizes, eval_every, steps
PositiveInt = Annotated[int, Field(ge=1)]
#: counts where 0 means "none" (extra passes, warm-up steps, history length)
NonNegativeInt = Annotated[int, Field(ge=0)]
#: a random seed: what numpy and torch accept (0 .. 2**32 - 1)
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
#: a learning rate: finite, positive, and at most 10 (no optimiser here trains above that)
Rate = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]
#: a finite positive real (temperatures, scales)
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: a finite real >= 0 (loss weights, regularisation, weight decay)
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: a share or probability in [0, 1] (dropout uses ``Field(ge=0, lt=1)``)
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: any finite real (a signed offset or margin); still refuses NaN and infinity
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    tasks: tuple[str, ...]
    description: str = ""
    params: type[BaseModel] = Params
    version: str = "0"
    #: what one cell needs, for ``--executor ray``: {"cpus": 1, "gpus": 0, "memory_gb": 2}
    #: (a suite may override it per method with ``resources:``)
    resources: Optional[dict] = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tasks: tuple[str, ...]
    description: str = ""
    default_task: str = "topk"
    #: the loader's params model: ``bench validate`` checks a suite's dataset ``params``
    #: against it (unknown keys with the closest known ones, bounds, and that a ``path``
    #: exists). ``None``: the params are only checked when the loader runs.
    params: Optional[type[BaseModel]] = None
    #: bump when the loader's output changes: the cells that use it rerun
    version: str = "0"


@dataclass(frozen=True)
class SamplerSpec:
    """A training negative sampler.

    ``params`` is the model of the sampler's params (a method's ``sampler_params``):
    ``bench validate`` checks them against it. The harness always passes one extra key,
    ``n`` (negatives per (user, positive) pair, from the method's ``n_negatives``), to
    ``bench_sample_negatives``, so the model must accept ``n``; users never write ``n``
    in ``sampler_params`` (validate refuses it and points to ``n_negatives``).
    """

    name: str
    description: str = ""
    #: model kinds the sampler needs (e.g. MixGCF needs a graph model's layer embeddings)
    requires: tuple[str, ...] = ()
    params: Optional[type[BaseModel]] = None
    #: bump when the draws change: the cells that use the sampler rerun
    version: str = "0"


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
    #: bump when the computation changes: the cells that report the metric rerun
    version: str = "0"


@dataclass
class ScoreResult:
    """What scoring returns: mean metrics (ranx names, e.g. ``ndcg@10``), per-user
    values for significance tests, and the top-K lists as a TREC run."""

    metrics: dict[str, float]
    per_user: dict[str, dict[str, float]] = field(default_factory=dict)
    topk: Any = None  # (users LongTensor, items LongTensor[n, K]) for ranking tasks
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitSpec:
    """A split protocol usable as a suite's ``split: {strategy: NAME}``.

    ``split(data: Interactions, **options) -> (train, valid, test[, info])`` returns index
    arrays into the events (and optionally a JSON-able dict of diagnostics). It must be a
    pure function of the events and its options (``seed`` included): the split id hashes
    both, and every method of a suite sees the same split.
    """

    name: str
    split: Callable[..., Any]
    description: str = ""
    #: bump when the split changes: its split ids, and so the cells on it, change
    version: str = "0"


@dataclass(frozen=True)
class AugmenterSpec:
    """A test-time augmentation operator (e.g. for TTA4SR): ``apply(batch, params, model,
    ctx) -> views`` makes augmented copies of a batch of inputs. Methods that augment
    look operators up in ``ctx.registry.catalogue.augmenters`` by name."""

    name: str
    apply: Callable[..., Any]
    description: str = ""
    tasks: tuple[str, ...] = ("sequential",)
    #: model capabilities (attribute names) the operator needs
    requires: tuple[str, ...] = ()
    version: str = "0"


# --- model kinds the harness's scorers understand ---------------------------------------------

@runtime_checkable
class RankingScorer(Protocol):
    """A ranking model (tasks topk, signed; sequential too): scores every item for users.

    ``score`` returns a fresh ``FloatTensor[len(users), n_items]`` (the scorer writes into
    it); the harness masks known items and ranks."""

    def score(self, users: "torch.Tensor") -> "torch.Tensor": ...


@runtime_checkable
class SequenceModel(Protocol):
    """A sequential model: scores every item from left-padded item-token histories
    (``0`` pads, item ``i`` is token ``i + 1``) up to ``max_len`` long."""

    max_len: int

    def score_sequences(self, tokens: "torch.Tensor") -> "torch.Tensor": ...


@runtime_checkable
class PolicyModel(Protocol):
    """An aligned LLM policy (reasoning, preference): the trained causal LM, the frozen
    model it started from, and their tokenizer (:class:`harness.llm.Policy`)."""

    model: Any
    tokenizer: Any
    init_model: Any


@dataclass
class TrainResult:
    """What ``bench_train`` returns: the fitted model and its training history.

    ``history`` holds numbers the runner logs with the cell's metrics (``best_epoch``,
    ``seconds_per_epoch``, ...). A bare model is still accepted from a plugin (its
    ``history`` attribute, if any, is read), so older third-party plugins keep working.
    """

    model: Any
    history: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, out: Any) -> "TrainResult":
        """What ``bench_train`` returned, as a TrainResult: itself, or a bare model with
        its ``history`` attribute if it has one (plugins written before TrainResult). The
        history dict is kept, not copied: a scorer may add its own figures to it."""
        if isinstance(out, cls):
            return out if out.history is not None else cls(out.model, {})
        history = getattr(out, "history", None)
        return cls(out, history if isinstance(history, dict) else {})


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


def still_improving(best_epoch: int, epoch_budget: int, patience: int, eval_every: int = 1) -> bool:
    """True when the best validation epoch lies in the last ``patience`` evaluations of the
    budget: early stopping could not have fired, so the curve may still be rising and the
    arm is under-trained rather than converged. Epochs are 0-based."""
    if epoch_budget <= 0 or best_epoch < 0:
        return False
    return best_epoch >= epoch_budget - patience * max(eval_every, 1)


def budget_history(best_epoch: int, epoch_budget: int, patience: int,
                   eval_every: int = 1) -> dict[str, float]:
    """The budget fields every trained cell logs (a training loop that does not use
    :func:`fit` calls this for its own history)."""
    return {"epoch_budget": epoch_budget, "patience": patience, "eval_every": eval_every,
            "still_improving": float(still_improving(best_epoch, epoch_budget, patience, eval_every))}


#: nesting depth of :func:`optimizer_steps_not_counted` blocks (0: every step counts)
_UNCOUNTED_DEPTH = [0]


@contextmanager
def optimizer_steps_not_counted() -> Iterator[None]:
    """Optimiser steps taken inside this block are left out of the cell's
    ``optimizer_steps``: for shared preparation that is cached and reused by every arm
    (an SFT warm start), which would otherwise land on whichever cell happened to build
    it first and make that arm's budget look larger."""
    _UNCOUNTED_DEPTH[0] += 1
    try:
        yield
    finally:
        _UNCOUNTED_DEPTH[0] -= 1


def optimizer_steps_counted() -> bool:
    """False inside :func:`optimizer_steps_not_counted` (read by the runner's counter)."""
    return _UNCOUNTED_DEPTH[0] == 0


def count_optimizer_steps():
    """A context manager yielding a one-element list that counts every torch optimiser step
    taken inside the block (:func:`harness.training.count_optimizer_steps`, which the
    runner uses for a cell's ``optimizer_steps``). Public for a plugin that trains a model
    once and reuses it across cells (a cached backbone), so each cell can report the
    steps its model took."""
    from .training import count_optimizer_steps as counter

    return counter()


class PluginError(BenchError):
    """A plugin is broken (wrong hook signature, duplicate name, ...)."""


_LAZY = {
    "Interactions": ".data.interactions", "Dataset": ".data.dataset", "Context": ".context",
    "score_ranking": ".scoring", "full_ranking_topk": ".scoring", "ranx_evaluate": ".scoring",
    "max_cutoff": ".scoring", "MetricName": ".scoring", "HeldOutPositives": ".metrics_beyond",
    "get_or_build": ".cache", "content_key": ".cache", "BestOnValidation": ".training",
}


def __getattr__(name: str) -> Any:
    """Import the heavy public names (torch, scipy) on first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __package__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness.api' has no attribute '{name}'")
