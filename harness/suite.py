"""Suite files: YAML -> validated :class:`Suite` -> list of :class:`Cell`.

Every error names the file, the key path and, for unknown names, the closest known ones;
YAML is read with the safe loader only (no python tags).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import checks
from .api import BenchError, Seed, param_names, resolve_params
from .claims import Claim
from .registry import Registry, closest
from .scoring import MetricName


class SuiteError(BenchError):
    """An invalid suite: nothing has run (exit status 2)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(_Strict):
    strategy: str = "random_ratio"
    ratios: Optional[list[float]] = None
    seed: Seed = 2020
    options: dict[str, Any] = Field(default_factory=dict)  # protocol-specific knobs

    def kwargs(self) -> dict[str, Any]:
        kw = dict(self.options, seed=self.seed)
        if self.ratios is not None:
            kw["ratios"] = tuple(self.ratios)
        return kw


class PreprocessConfig(_Strict):
    min_rating: Optional[float] = None
    kcore: int = 0


class DatasetEntry(_Strict):
    name: str
    label: Optional[str] = None
    task: Optional[str] = None
    params: dict[str, Any] = Field(default_factory=dict)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    @property
    def key(self) -> str:
        return self.label or self.name


SEARCH_KINDS = ("loguniform", "uniform", "int", "choice")


class SearchDim(_Strict):
    """One searched parameter: exactly one of ``loguniform: [lo, hi]``,
    ``uniform: [lo, hi]``, ``int: [lo, hi]`` / ``int: [lo, hi, step]``, ``choice: [...]``.

    Kept to Optuna's distributions so a space maps 1:1 onto ``trial.suggest_*``."""

    kind: str
    args: list[Any]

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and set(raw) == {"kind", "args"}:
            return raw
        allowed = ", ".join(f"{k}: [...]" for k in SEARCH_KINDS)
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ValueError(f"a searched parameter is a mapping with exactly one of {allowed}; "
                             f"got {raw!r}")
        (kind, args), = raw.items()
        if kind not in SEARCH_KINDS:
            raise ValueError(f"unknown search kind '{kind}'.{closest(str(kind), SEARCH_KINDS)} "
                             f"Allowed: {', '.join(SEARCH_KINDS)}")
        if not isinstance(args, list) or not args:
            raise ValueError(f"{kind}: expected a non-empty list, got {args!r}")
        if kind == "choice":
            bad = [a for a in args if not isinstance(a, (str, int, float, bool, type(None)))]
            if bad:
                raise ValueError(f"choice: values must be scalars (str, number, bool, null); "
                                 f"got {bad[0]!r}")
            return {"kind": kind, "args": args}
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ValueError(f"{kind}: bounds must be numbers, got {args!r}")
        if kind == "int":
            if len(args) not in (2, 3) or not all(float(a).is_integer() for a in args):
                raise ValueError(f"int: expected [low, high] or [low, high, step] of integers, "
                                 f"got {args!r}")
            if len(args) == 3 and args[2] <= 0:
                raise ValueError(f"int: step must be positive, got {args[2]}")
        elif len(args) != 2:
            raise ValueError(f"{kind}: expected [low, high], got {args!r}")
        if args[0] >= args[1]:
            raise ValueError(f"{kind}: low must be below high, got {args!r}")
        if kind == "loguniform" and args[0] <= 0:
            raise ValueError(f"loguniform: low must be positive, got {args[0]}")
        return {"kind": kind, "args": args}

    def candidates(self) -> list[Any]:
        """Values that stand for the whole range when checking against a params model."""
        if self.kind == "int":
            return [int(self.args[0]), int(self.args[1])]
        return list(self.args)

    def grid(self) -> Optional[list[Any]]:
        """Every value of a finite dimension (``choice``, ``int``), for ``sampler: grid``;
        None for a continuous one."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "int":
            step = int(self.args[2]) if len(self.args) == 3 else 1
            return list(range(int(self.args[0]), int(self.args[1]) + 1, step))
        return None

    def suggest(self, trial: Any, name: str) -> Any:
        a = self.args
        if self.kind == "loguniform":
            return trial.suggest_float(name, float(a[0]), float(a[1]), log=True)
        if self.kind == "uniform":
            return trial.suggest_float(name, float(a[0]), float(a[1]))
        if self.kind == "int":
            return trial.suggest_int(name, int(a[0]), int(a[1]), step=int(a[2]) if len(a) == 3 else 1)
        return trial.suggest_categorical(name, a)

    def as_yaml(self) -> dict[str, list[Any]]:
        return {self.kind: list(self.args)}


class Resources(_Strict):
    """A cell's resource request on Ray (``--executor ray``); unset keys keep the method's."""

    cpus: Optional[float] = Field(None, gt=0)
    gpus: Optional[float] = Field(None, ge=0)
    memory_gb: Optional[float] = Field(None, gt=0)


class MethodEntry(_Strict):
    name: str
    label: Optional[str] = None
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, SearchDim] = Field(default_factory=dict)
    #: dataset keys (label or name) this method runs on; default: every dataset. Lets one
    #: suite hold e.g. a topk and a sequential dataset with the models of each.
    datasets: Optional[list[str]] = None
    #: the label this arm is tested against on leaderboards, e.g. its own backbone
    #: (``gru4rec+X`` against ``gru4rec``); default: the suite's ``baseline``
    baseline: Optional[str] = None
    #: per-method override of the method spec's resource request (Ray only)
    resources: Optional[Resources] = None

    @field_validator("search", mode="before")
    @classmethod
    def _null_search(cls, raw: Any) -> Any:
        """``search: null`` = no search space (how a suite that extends another turns a
        tuned method into a fixed one, e.g. a smoke test)."""
        return {} if raw is None else raw

    @property
    def key(self) -> str:
        return self.label or self.name


class TrackingConfig(_Strict):
    uri: str = "sqlite:///mlflow.db"


class TuningConfig(_Strict):
    """How ``bench tune`` searches: the same ``trials`` budget for every method, scored on
    the validation split only."""

    metric: Optional[str] = None  # default: the suite's valid_metric
    direction: Optional[Literal["maximize", "minimize"]] = None  # default: from the metric
    trials: int = Field(20, ge=1)
    #: grid: every point of a finite space once (``choice``/``int`` dimensions only; trials
    #: must equal the grid's size, so each method's budget is its whole grid)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    sampler_seed: Seed = 0
    pruner: Literal["median", "percentile", "hyperband", "none"] = "median"
    pruner_startup_trials: int = Field(3, ge=0)
    pruner_warmup_steps: int = Field(2, ge=0)
    storage: Optional[str] = None  # any Optuna RDB URL; default sqlite under .bench_cache/
    seed: Optional[Seed] = None  # training seed of every trial; default: the suite's first seed

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            unknown = [k for k in raw if k not in cls.model_fields]
            if unknown:
                k = str(unknown[0])
                raise ValueError(f"unknown key '{k}'.{closest(k, cls.model_fields)} "
                                 f"Allowed: {', '.join(cls.model_fields)}")
        return raw


class Suite(_Strict):
    suite: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    datasets: list[DatasetEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    metrics: list[str] = Field(default_factory=lambda: ["ndcg@10", "recall@10"], min_length=1)
    valid_metric: Optional[str] = None
    baseline: Optional[str] = None
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    tuning: Optional[TuningConfig] = None
    #: the paper's claims, judged on the leaderboard from the runs (harness.claims)
    claims: list[Claim] = Field(default_factory=list)

    def baseline_of(self, default: Optional[str] = None) -> dict[str, str]:
        """Method key -> the label it is tested against: its own ``baseline``, else
        ``default`` (e.g. a ``--baseline`` override), else the suite's ``baseline``. Arms
        without either, and the baselines themselves, are left out."""
        out = {}
        for m in self.methods:
            base = m.baseline or default or self.baseline
            if base and base != m.key:
                out[m.key] = base
        return out

    @model_validator(mode="after")
    def _unique_labels(self) -> "Suite":
        for kind, entries in (("methods", self.methods), ("datasets", self.datasets)):
            keys = [e.key for e in entries]
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"{kind}: '{dupes[0]}' appears twice; give one of them a "
                                 "distinct `label:`")
        if self.valid_metric is None:
            self.valid_metric = self.metrics[0]
        if self.tuning is not None:
            if self.tuning.metric is None:
                self.tuning.metric = self.valid_metric
            if self.tuning.seed is None:
                self.tuning.seed = self.seeds[0]
        return self


@dataclass(frozen=True)
class Cell:
    """One unit of work: a method on a dataset with a seed."""

    suite: str
    dataset: DatasetEntry
    method: MethodEntry
    seed: int
    metrics: tuple[str, ...]
    valid_metric: str
    task: str
    method_params: dict  # defaults filled in by the method's parameter model
    #: extra MLflow tags for the cell's run (e.g. the tuning budget); not part of the hash
    tags: dict = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return f"{self.method.key} | {self.dataset.key} | seed {self.seed}"

    @property
    def run_name(self) -> str:
        """The MLflow run name: the seed right after the method, so a truncated name in the
        runs table still shows which seed it is."""
        return f"{self.method.key} | seed {self.seed} | {self.dataset.key}"

    def resolved(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "method": {"name": self.method.name, "label": self.method.key, "params": self.method_params},
            "dataset": {"name": self.dataset.name, "label": self.dataset.key, "task": self.task,
                        "params": self.dataset.params,
                        "preprocess": self.dataset.preprocess.model_dump(),
                        "split": self.dataset.split.model_dump()},
            "seed": self.seed,
            "metrics": list(self.metrics),
            "valid_metric": self.valid_metric,
        }

    def content_hash(self, split_id: str, plugins: Union[str, dict[str, str]]) -> str:
        """The cell's identity: its resolved config, split and every plugin part it uses
        with versions (``Registry.cell_plugins``), so a plugin release reruns its cells."""
        payload = json.dumps({"cell": self.resolved(), "split_id": split_id,
                              "plugin": plugins}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --- loading and validation ------------------------------------------------------------------

def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_yaml(path: Union[str, Path]) -> Any:
    """A suite file's YAML: UTF-8 text, safe loader, aliases bounded (harness.userfiles)."""
    from .userfiles import load_yaml, read_text

    text = read_text(path, "suite file", SuiteError, max_bytes=16 * 1024 * 1024)
    return load_yaml(text, str(path), SuiteError)


def read_suite(path: Union[str, Path], overrides: Sequence[str] = ()) -> Any:
    """The raw suite mapping of a file: its ``extends:`` chain resolved, then the
    ``--set`` overrides applied (see :mod:`harness.grid`); not yet validated."""
    from .grid import apply_sets, resolve_extends

    raw = resolve_extends(read_yaml(path), Path(path), read_yaml)
    return apply_sets(raw, overrides)


def load_suite(path: Union[str, Path], registry: Registry, overrides: Sequence[str] = (),
               only: Sequence[str] = ()) -> tuple[Suite, list[Cell]]:
    """Parse and fully validate a suite; return it with its expanded cells.

    ``overrides`` are ``--set KEY.PATH=VALUE`` strings, validated with the file;
    ``only`` are ``--only KEY=VALUE,...`` filters on the cells."""
    from .grid import select_cells

    source = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    suite, cells = validate_suite(read_suite(path, overrides), registry, source=source)
    return suite, select_cells(cells, only, suite)


def validate_suite(raw: Any, registry: Registry, source: str = "<suite>") -> tuple[Suite, list[Cell]]:
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite must be a YAML mapping with keys suite, datasets, "
                         f"methods, seeds, metrics; got {type(raw).__name__}.")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = _loc(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                parent = Suite if len(err["loc"]) == 1 else None
                hint = closest(str(err["loc"][-1]), parent.model_fields) if parent else ""
                msg = f"unknown key.{hint}"
            lines.append(f"{source}: {key}: {msg}")
        raise SuiteError("\n".join(lines)) from None

    cat = registry.catalogue
    problems: list[str] = []
    for m in suite.metrics + [suite.valid_metric] + ([suite.tuning.metric] if suite.tuning else []):
        try:
            name = MetricName.parse(m)
            spec = cat.metric(name.base)
            if spec.needs_cutoff and name.k is None:
                problems.append(f"{source}: metrics: '{m}' needs a cutoff, e.g. '{m}@10'.")
        except (BenchError, KeyError) as exc:
            problems.append(f"{source}: metrics: {str(exc).strip(chr(34))}")
    problems += checks.label_problems(suite.methods, source)
    keys = [m.key for m in suite.methods]
    for i, c in enumerate(suite.claims):
        for field_name in ("method", "than"):
            label = getattr(c, field_name)
            if label is not None and label not in keys:
                problems.append(f"{source}: claims[{i}].{field_name}: '{label}' is not one of the "
                                f"suite's methods.{closest(label, keys)}")
        if c.metric not in suite.metrics:
            problems.append(f"{source}: claims[{i}].metric: '{c.metric}' is not one of the "
                            f"suite's metrics ({', '.join(suite.metrics)}).")
    for i, m in enumerate(suite.methods):
        if m.baseline and m.baseline not in keys:
            problems.append(f"{source}: methods[{i}].baseline: '{m.baseline}' is not one of the "
                            f"suite's methods.{closest(m.baseline, keys)}")
    if suite.baseline and suite.baseline not in [m.key for m in suite.methods]:
        problems.append(f"{source}: baseline: '{suite.baseline}' is not one of the suite's methods."
                        f"{closest(suite.baseline, [m.key for m in suite.methods])}")

    tasks: dict[str, str] = {}
    for i, d in enumerate(suite.datasets):
        if d.split.strategy not in cat.splits:
            problems.append(f"{source}: datasets[{i}].split.strategy: unknown split strategy "
                            f"'{d.split.strategy}'.{closest(d.split.strategy, cat.splits)} "
                            f"Known: {', '.join(sorted(cat.splits))}.")
        try:
            spec = cat.dataset(d.name)
        except KeyError as exc:
            problems.append(f"{source}: datasets[{i}].name: {exc.args[0]}")
            continue
        task = d.task or spec.default_task
        if task not in spec.tasks:
            problems.append(f"{source}: datasets[{i}].task: dataset '{d.name}' supports "
                            f"{', '.join(spec.tasks)}, not '{task}'.")
        tasks[d.key] = task
        problems += checks.dataset_problems(d, i, spec, task, source, registry)
    problems += checks.metric_problems(list(dict.fromkeys(suite.metrics + [suite.valid_metric])),
                                       tasks, cat, source)

    resolved_params: dict[str, dict] = {}
    for i, m in enumerate(suite.methods):
        try:
            spec = cat.method(m.name)
        except KeyError as exc:
            problems.append(f"{source}: methods[{i}].name: {exc.args[0]}")
            continue
        try:
            resolved_params[m.key] = resolve_params(spec.params, m.params, cat)
        except ValidationError as exc:
            for err in exc.errors():
                hint = ""
                if err["type"] == "extra_forbidden":
                    hint = closest(str(err["loc"][-1]), param_names(spec.params)) or \
                        f" Known: {', '.join(param_names(spec.params))}."
                problems.append(f"{source}: methods[{i}].params.{_loc(err['loc'])}: "
                                f"{err['msg'].removeprefix('Value error, ')}.{hint}".replace("..", "."))
        if m.key in resolved_params:
            problems += _check_search(m, i, spec, source, tuned=suite.tuning is not None)
            if suite.tuning is not None and suite.tuning.sampler == "grid" and m.search:
                problems += _check_grid(m, i, suite.tuning.trials, source)
            problems += checks.sampler_problems(resolved_params[m.key], i, cat.samplers, source)
        keys = [d.key for d in suite.datasets]
        for k in m.datasets or []:
            if k not in keys:
                problems.append(f"{source}: methods[{i}].datasets: '{k}' is not one of the "
                                f"suite's datasets.{closest(k, keys)}")
        for d in suite.datasets:
            if m.datasets is not None and d.key not in m.datasets:
                continue
            task = tasks.get(d.key)
            if task and task not in spec.tasks:
                problems.append(f"{source}: methods[{i}] '{m.key}' supports tasks "
                                f"{', '.join(spec.tasks)} but dataset '{d.key}' is a '{task}' task.")
    if problems:
        raise SuiteError("\n".join(dict.fromkeys(problems)))

    if suite.tuning and suite.tuning.direction is None:
        spec = cat.metric(MetricName.parse(suite.tuning.metric).base)
        suite.tuning.direction = "maximize" if spec.higher_is_better else "minimize"
    cells = [Cell(suite.suite, d, m, seed, tuple(suite.metrics), suite.valid_metric,
                  tasks[d.key], resolved_params[m.key])
             for d in suite.datasets for m in suite.methods for seed in suite.seeds
             if m.datasets is None or d.key in m.datasets]
    return suite, cells



def _check_grid(m: MethodEntry, i: int, trials: int, source: str) -> list[str]:
    """``sampler: grid`` visits each point once: every dimension must be finite and the
    trial budget must equal the number of points (no point skipped, none repeated)."""
    continuous = [k for k, d in m.search.items() if d.grid() is None]
    if continuous:
        return [f"{source}: methods[{i}].search.{continuous[0]}: tuning.sampler 'grid' needs "
                f"finite dimensions (choice or int), not {m.search[continuous[0]].kind}."]
    size = math.prod(len(d.grid()) for d in m.search.values())
    if size != trials:
        return [f"{source}: methods[{i}].search: '{m.key}' has a grid of {size} point(s) but "
                f"tuning.trials is {trials}; with sampler 'grid' they must be equal."]
    return []


def _check_search(m: MethodEntry, i: int, spec: Any, source: str, tuned: bool) -> list[str]:
    """Searched names must be real parameters, and every bound or choice a valid value."""
    problems = []
    if m.search and not tuned:
        problems.append(f"{source}: methods[{i}].search: '{m.key}' has a search space but the "
                        "suite has no `tuning:` block (e.g. `tuning: {trials: 10}`).")
    fields = param_names(spec.params)
    for name, dim in m.search.items():
        where = f"{source}: methods[{i}].search.{name}"
        if name not in fields:
            problems.append(f"{where}: '{name}' is not a parameter of method '{spec.name}'."
                            f"{closest(name, fields)} Known: {', '.join(fields) or 'none'}.")
            continue
        for value in dim.candidates():
            try:
                spec.params.model_validate({**m.params, name: value})
            except ValidationError as exc:
                errs = [e for e in exc.errors() if e["loc"][:1] == (name,)] or exc.errors()
                problems.append(f"{where}: {dim.kind} value {value!r} is not a valid '{name}': "
                                f"{errs[0]['msg'].removeprefix('Value error, ')}.")
                break
    return problems
