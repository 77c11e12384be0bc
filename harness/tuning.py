"""Hyper-parameter search with Optuna: one study per (method, dataset), equal budgets.

Why this shape:

* Budget parity: every searched method gets ``tuning.trials`` finished trials (COMPLETE
  or PRUNED); failed trials do not count, so a crash does not silently shrink a budget.
* Resumable and shareable: study names are fixed by the tuning-relevant config, the
  storage is any Optuna RDB URL and studies are opened with ``load_if_exists``; an
  interrupted ``bench tune`` (or a second worker on the same storage) continues the
  same study and stops when the budget is reached (``MaxTrialsCallback``).
* Validation only: a trial trains with the cell's early stopping on validation and is
  scored on the validation split (``run_cell(part="valid")``); test is never touched.
* Pruning: the training loop reports per-epoch validation values through
  ``ctx.report``; the trial's callback forwards them to Optuna and raises
  ``TrialPruned`` when the pruner says so.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .api import BenchError, resolve_params
from .registry import Registry
from .names import mlflow_name
from .suite import Cell, Suite
from .stores import lost_insert_race

COUNTED = ("COMPLETE", "PRUNED")  # trial states that use up budget


@dataclass
class StudySummary:
    method: str
    dataset: str
    study: str
    budget: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    best_value: Optional[float] = None
    best_params: dict = field(default_factory=dict)

    @property
    def counted(self) -> int:
        return self.complete + self.pruned


def default_storage(suite: Suite, cache_dir: Path = Path(".bench_cache")) -> str:
    """``$BENCH_TUNING_STORAGE`` (so workers can share a study without editing the suite),
    else the suite's ``tuning.storage``, else a SQLite file under the cache."""
    if os.environ.get("BENCH_TUNING_STORAGE"):
        return os.environ["BENCH_TUNING_STORAGE"]
    if suite.tuning and suite.tuning.storage:
        return suite.tuning.storage
    return f"sqlite:///{cache_dir}/optuna-{suite.suite}.db"


def study_name(suite: Suite, cell: Cell) -> str:
    """Fixed by everything that changes what a trial means, so a resumed or shared run
    lands in the same study and an edited search space starts a new one."""
    t = suite.tuning
    payload = {"search": {k: v.as_yaml() for k, v in sorted(cell.method.search.items())},
               "method": cell.method.name, "params": cell.method_params,
               "dataset": cell.resolved()["dataset"], "metric": t.metric,
               "direction": t.direction, "seed": t.seed, "valid_metric": cell.valid_metric}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{suite.suite}.{cell.dataset.key}.{cell.method.key}.{digest[:8]}"


def _optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(url: str) -> Any:
    """An Optuna RDB storage; heartbeats let a later run fail trials orphaned by a kill."""
    optuna = _optuna()
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    last: Exception = RuntimeError("unreachable")
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=30,
                                              grace_period=120)
        except Exception as exc:  # noqa: BLE001 - classified below
            last = exc
            # two workers creating the schema of a new database at once: one of them loses
            # the race with an IntegrityError; the schema exists then, so try again
            if not lost_insert_race(exc):
                break
            time.sleep(0.5 * (attempt + 1))
    raise BenchError(f"tuning storage '{url}' cannot be opened: {type(last).__name__}: "
                     f"{last}. Use an Optuna RDB URL such as sqlite:///optuna.db or "
                     "postgresql://user@host/db.") from None


def _sampler(suite: Suite, n_existing: int, cell: Optional[Cell] = None):
    optuna = _optuna()
    # Offset by the trials already stored: a resumed study draws fresh points instead of
    # replaying the first ones, and a fresh run is reproducible.
    seed = suite.tuning.sampler_seed + n_existing
    if suite.tuning.sampler == "grid":
        # the grid sampler skips points already in the study, so a resume finishes the grid
        return optuna.samplers.GridSampler({k: d.grid() for k, d in cell.method.search.items()},
                                           seed=seed)
    if suite.tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(suite: Suite):
    optuna = _optuna()
    t = suite.tuning
    if t.pruner == "none":
        return optuna.pruners.NopPruner()
    if t.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if t.pruner == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=t.pruner_startup_trials,
                                               n_warmup_steps=t.pruner_warmup_steps)
    return optuna.pruners.MedianPruner(n_startup_trials=t.pruner_startup_trials,
                                       n_warmup_steps=t.pruner_warmup_steps)


def _counts(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def study_cells(cells: list[Cell]) -> list[Cell]:
    """One representative cell per (dataset, method) pair, in suite order."""
    seen, out = set(), []
    for c in cells:
        if (c.dataset.key, c.method.key) not in seen:
            seen.add((c.dataset.key, c.method.key))
            out.append(c)
    return out


def tune_suite(suite: Suite, cells: list[Cell], registry: Registry, *,
               storage: Optional[str] = None, tracking_uri: Optional[str] = None,
               cache_dir: Path = Path(".bench_cache"), progress: Any = None) -> list[StudySummary]:
    """Run (or resume) every study of the suite until each has its budget of trials."""
    from .runner import prepare_dataset
    from .tracking import Tracker

    if suite.tuning is None:
        raise BenchError(f"suite '{suite.suite}' has no `tuning:` block; add e.g. "
                         "`tuning: {trials: 10}` and a `search:` space to a method.")
    optuna = _optuna()
    url = storage or default_storage(suite, cache_dir)
    store = open_storage(url)
    tracker = Tracker(tracking_uri or suite.tracking.uri, suite.suite)
    reps = study_cells(cells)
    if not any(c.method.search for c in reps):
        raise BenchError(f"suite '{suite.suite}': no method has a `search:` space; nothing to tune.")
    datasets: dict[str, Any] = {}
    summaries = []
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with tracker.parent_run(f"tune {suite.suite} @ {stamp}",
                            {"bench.suite": suite.suite, "bench.command": "tune"}):
        for cell in reps:
            if not cell.method.search:
                continue
            if cell.dataset.key not in datasets:
                datasets[cell.dataset.key] = prepare_dataset(cell.dataset, cell.task, registry,
                                                             cache_dir)
            summaries.append(_tune_one(suite, cell, datasets[cell.dataset.key], registry,
                                       store, tracker, cache_dir, progress))
    return summaries


def _tune_one(suite, cell, dataset, registry, store, tracker, cache_dir, progress) -> StudySummary:
    optuna = _optuna()
    t = suite.tuning
    name = study_name(suite, cell)
    existing = 0
    try:
        existing = len(optuna.load_study(study_name=name, storage=store).trials)
    except KeyError:
        pass
    study = optuna.create_study(study_name=name, storage=store, direction=t.direction,
                                sampler=_sampler(suite, existing, cell), pruner=_pruner(suite),
                                load_if_exists=True)
    for key, value in {"suite": suite.suite, "method": cell.method.key,
                       "dataset": cell.dataset.key, "budget": t.trials, "metric": t.metric,
                       "split": "valid"}.items():
        study.set_user_attr(key, value)
    if t.sampler == "grid":
        _requeue_failed_grid_points(study)
    counts = _counts(study)
    remaining = t.trials - sum(counts.get(s, 0) for s in COUNTED)
    task = progress.add_task(f"tune {cell.method.key} | {cell.dataset.key}",
                             total=t.trials, completed=t.trials - max(remaining, 0)) if progress else None
    with tracker.nested_run(f"study {cell.method.key} | {cell.dataset.key}",
                            {"bench.kind": "study", "bench.study": name,
                             "bench.method": cell.method.key, "bench.dataset": cell.dataset.key,
                             "bench.tuning_budget": str(t.trials),
                             "bench.tuning_sampler": t.sampler, "bench.tuning_pruner": t.pruner}) as log:
        if remaining > 0:
            objective = _Objective(suite, cell, dataset, registry, tracker, cache_dir, name)
            callbacks = [optuna.study.MaxTrialsCallback(
                t.trials, states=tuple(getattr(optuna.trial.TrialState, s) for s in COUNTED))]
            if progress:
                callbacks.append(lambda s, tr: progress.advance(task)
                                 if tr.state.name in COUNTED else None)
            study.optimize(objective, n_trials=remaining, callbacks=callbacks, catch=(Exception,),
                           gc_after_trial=True)
        counts = _counts(study)
        summary = StudySummary(cell.method.key, cell.dataset.key, name, t.trials,
                               counts.get("COMPLETE", 0), counts.get("PRUNED", 0),
                               counts.get("FAIL", 0))
        if summary.complete:
            summary.best_value = float(study.best_value)
            summary.best_params = dict(study.best_trial.params)
            log.metrics({"best_valid_" + mlflow_name(t.metric): summary.best_value})
            log.json(study.best_trial.user_attrs.get("params", {}), "best_params.json")
        log.tags({"bench.tuning_trials": str(summary.counted),
                         "bench.tuning_pruned": str(summary.pruned),
                         "bench.tuning_failed": str(summary.failed)})
    return summary


def _requeue_failed_grid_points(study) -> None:
    """Queue again each grid point whose only trials failed (a crash, or a kill whose
    RUNNING trial is failed here once its heartbeat is stale): Optuna's grid sampler counts
    a failed trial's point as visited, so a resumed grid would otherwise repeat a finished
    point and never try the failed one."""
    optuna = _optuna()
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    key = lambda params: json.dumps(params, sort_keys=True, default=str)  # noqa: E731
    done = {key(tr.params) for tr in trials if tr.state.name in COUNTED + ("WAITING", "RUNNING")}
    for tr in trials:
        if tr.state.name == "FAIL" and tr.params and key(tr.params) not in done:
            study.enqueue_trial(dict(tr.params))
            done.add(key(tr.params))


class _Objective:
    """One Optuna trial = one validation-scored cell, logged as a nested MLflow run."""

    def __init__(self, suite, cell, dataset, registry, tracker, cache_dir, study) -> None:
        self.suite, self.cell, self.dataset, self.registry = suite, cell, dataset, registry
        self.tracker, self.cache_dir, self.study = tracker, cache_dir, study
        self.spec = registry.catalogue.method(cell.method.name)

    def __call__(self, trial) -> float:
        from .runner import run_cell

        optuna = _optuna()
        t, cell = self.suite.tuning, self.cell
        values = {k: dim.suggest(trial, k) for k, dim in cell.method.search.items()}
        params = resolve_params(self.spec.params, {**cell.method_params, **values})
        trial.set_user_attr("params", params)
        tcell = replace(cell, seed=t.seed, method_params=params,
                        metrics=tuple(dict.fromkeys([t.metric, *cell.metrics])))
        report_name = "valid_" + mlflow_name(cell.valid_metric)
        outcome: Optional[BaseException] = None
        value = float("nan")
        with self.tracker.nested_run(
                f"trial {trial.number} | {cell.method.key} | {cell.dataset.key}",
                {"bench.kind": "trial", "bench.study": self.study,
                 "bench.trial": str(trial.number), "bench.method": cell.method.key,
                 "bench.dataset": cell.dataset.key, "bench.seed": str(t.seed),
                 "bench.split_id": self.dataset.split_id}) as log:
            log.params({"search": values})

            def prune(name: str, v: float, step: int) -> None:
                if name != report_name:
                    return
                trial.report(float(v), step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{name}={v:.4f} at step {step}")

            def setup(ctx) -> None:
                ctx.log_metrics = log.metrics
                ctx.on_report.append(prune)

            try:
                metrics, _, _ = run_cell(tcell, self.dataset, self.registry, None,
                                         self.cache_dir, setup=setup, part="valid")
                value = float(metrics[t.metric])
                log.metrics({f"final_valid_{m}": metrics[m] for m in tcell.metrics if m in metrics})
                log.tags({"bench.trial_state": "COMPLETE"})
            except optuna.TrialPruned as exc:
                log.tags({"bench.trial_state": "PRUNED", "bench.pruned_at": str(exc)})
                outcome = exc
            except Exception as exc:  # Optuna records FAIL; the traceback goes to MLflow
                log.text(traceback.format_exc(), "traceback.txt")
                log.tags({"bench.trial_state": "FAIL", "bench.error": f"{type(exc).__name__}: {exc}"[:4000]})
                outcome = exc
        if outcome is not None:
            raise outcome
        return value


# --- using the results ------------------------------------------------------------------------

def best_params(suite: Suite, cell: Cell, registry: Registry, storage: Optional[str] = None,
                cache_dir: Path = Path(".bench_cache")) -> tuple[dict, dict[str, str]]:
    """The best finished trial's full params for ``cell`` and the tags that record it."""
    optuna = _optuna()
    url = storage or default_storage(suite, cache_dir)
    name = study_name(suite, cell)
    hint = f"run `bench tune` on the suite first (storage {_redact(url)}, study '{name}')"
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise BenchError(f"'{cell.method.key}' on '{cell.dataset.key}' has a search space but "
                         f"no tuning study yet: {hint}.") from None
    counts = _counts(study)
    if not counts.get("COMPLETE"):
        raise BenchError(f"'{cell.method.key}' on '{cell.dataset.key}': the tuning study has no "
                         f"completed trial ({counts or 'none'}); {hint}.")
    best = study.best_trial
    params = best.user_attrs.get("params") or {**cell.method_params, **best.params}
    params = resolve_params(registry.catalogue.method(cell.method.name).params, params)
    counted = sum(counts.get(s, 0) for s in COUNTED)
    tags = {"bench.tuning_budget": str(suite.tuning.trials), "bench.tuning_trials": str(counted),
            "bench.tuning_pruned": str(counts.get("PRUNED", 0)), "bench.tuning_study": name,
            "bench.tuning_sampler": suite.tuning.sampler,
            "bench.tuning_best_valid": f"{best.value:.6g}",
            "bench.tuned_params": json.dumps(best.params, sort_keys=True)[:4000]}
    return params, tags


def tuned_cells(suite: Suite, cells: list[Cell], registry: Registry,
                storage: Optional[str] = None, cache_dir: Path = Path(".bench_cache")) -> list[Cell]:
    """Cells with the tuned params swapped in (so their content hash changes with them).

    Methods without a search space keep their params and are tagged with a zero budget,
    so the leaderboard shows who was tuned and with how many trials."""
    if suite.tuning is None:
        return cells
    cache: dict[tuple[str, str], tuple[dict, dict]] = {}
    out = []
    for c in cells:
        if not c.method.search:
            out.append(replace(c, tags={**c.tags, "bench.tuning_budget": "0",
                                        "bench.tuning_trials": "0"}))
            continue
        key = (c.dataset.key, c.method.key)
        if key not in cache:
            cache[key] = best_params(suite, c, registry, storage, cache_dir)
        params, tags = cache[key]
        out.append(replace(c, method_params=params, tags={**c.tags, **tags}))
    return out


def _redact(url: str) -> str:
    """Never print a database password (one implementation: tracking.redact_uri)."""
    from .tracking import redact_uri

    return redact_uri(url)
