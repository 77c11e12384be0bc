"""Runs a suite's cells: shared splits, resume by cell hash, failure isolation, progress."""
from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from . import cache
from .api import BenchError, TaskData
from .names import metric_name_from_mlflow
from .context import Context, default_device, seed_everything
from .data.dataset import Dataset, split_id_for
from .data.diagnostics import split_diagnostics
from .data.preprocess import filter_min_rating, kcore
from . import memory
from .artifacts import log_cell_outputs, log_suite
from .registry import Registry
from .suite import Cell, DatasetEntry, Suite
from .tracking import HASH_TAG
from .training import count_optimizer_steps

CACHE_DIR = Path(".bench_cache")


@dataclass
class CellResult:
    cell: Cell
    status: str  # finished | failed | skipped
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    cell_hash: str = ""


def dataset_context(entry: DatasetEntry, registry: Registry, cache_dir: Path = CACHE_DIR) -> Context:
    """The context ``bench_load_dataset`` receives: seeded by the split's seed (loading
    is shared by every cell of the dataset, so no cell's seed), with the registry, so a
    loader can delegate with ``ctx.load_dataset(other, params)``."""
    return Context(registry=registry, seed=entry.split.seed, metrics=[], valid_metric="",
                   device=default_device(), cache_dir=cache_dir, workdir=cache_dir / "cells")


def prepare_dataset(entry: DatasetEntry, task: str, registry: Registry,
                    cache_dir: Path = CACHE_DIR) -> Dataset | TaskData:
    """Load, preprocess and split once; the split is materialised under its id.

    A generated task (:class:`TaskData`) arrives already split and is used as it is.
    """
    params = dict(entry.params)
    # the signed task's like/dislike threshold is the harness's, not the loader's
    sign_offset = params.pop("sign_offset", None) if task == "signed" else None
    raw = dataset_context(entry, registry, cache_dir).load_dataset(entry.name, params)
    if isinstance(raw, TaskData):
        return _prepare_task_data(raw, entry, task)
    data = kcore(filter_min_rating(raw, entry.preprocess.min_rating), entry.preprocess.kcore)
    split = entry.split
    spec = registry.catalogue.split(split.strategy)
    protocol = split.model_dump()
    if spec.version != "0":  # a bumped split protocol gets new split ids (and cells)
        protocol["version"] = spec.version
    split_id = split_id_for(data, entry.name, entry.preprocess.model_dump(), protocol)
    train, valid, test, info = _cached_split(data, entry, split_id, cache_dir, spec.split)
    ds = Dataset(entry.key, task, data, train, valid, test, split_id,
                 protocol={"split": split.model_dump(), "preprocess": entry.preprocess.model_dump()},
                 sign_offset=None if sign_offset is None else float(sign_offset))
    ds.diagnostics = {"n_users": data.n_users, "n_items": data.n_items, "n_train": len(train),
                      "n_valid": len(valid), "n_test": len(test),
                      "test_users": int(len(np.unique(data.user[test]))),
                      **split_diagnostics(data, train, valid, test)}
    if info:
        ds.diagnostics["split"] = info
    if ds.is_signed:
        from .signed import sign_diagnostics

        ds.diagnostics.update(sign_diagnostics(ds))
    return ds


def _cached_split(data, entry: DatasetEntry, split_id: str, cache_dir: Path,
                  splitter: Callable[..., Any]):
    """(train, valid, test, splitter info), split once and shared through harness.cache
    (a tampered or truncated split file is rebuilt, never trusted)."""
    split = entry.split

    def build(folder: Path):
        # a splitter may return a 4th element: its own diagnostics (JSON-able dict)
        out = splitter(data, **split.kwargs())
        train, valid, test = out[:3]
        info = dict(out[3]) if len(out) > 3 else {}
        np.savez_compressed(folder / "split.npz", train=train, valid=valid, test=test)
        (folder / "info.json").write_text(json.dumps(info, default=str))
        return train, valid, test, info

    def load(folder: Path):
        with np.load(folder / "split.npz", allow_pickle=False) as stored:
            parts = [stored[k] for k in ("train", "valid", "test")]
        n = len(data)
        for name, part in zip(("train", "valid", "test"), parts):
            if part.ndim != 1 or part.dtype.kind not in "iu" or (len(part) and (
                    part.min() < 0 or part.max() >= n)):
                raise ValueError(f"{name} is not a vector of event indices below {n}")
        return (*parts, json.loads((folder / "info.json").read_text()))

    inputs = {"split_id": split_id, "dataset": entry.name,
              "preprocess": entry.preprocess.model_dump(), "split": split.model_dump()}
    value, _, _ = cache.get_or_build(cache_dir, "splits", inputs, build, load, key=split_id)
    return value


def _prepare_task_data(data: TaskData, entry: DatasetEntry, task: str) -> TaskData:
    """Name, task and split id for a generated dataset (no preprocessing, no splitter)."""
    import hashlib

    if data.task != task:
        raise BenchError(f"dataset '{entry.name}' produced a '{data.task}' task, but the suite "
                         f"asks for '{task}'.")
    payload = json.dumps({"dataset": entry.name, "params": entry.params,
                          "fingerprint": data.fingerprint}, sort_keys=True, default=str)
    data.split_id = hashlib.sha256(payload.encode()).hexdigest()[:12]
    data.name = entry.key
    data.protocol = {"generator": entry.name, **data.protocol}
    return data


def cell_context(cell: Cell, registry: Registry, log: Any = None,
                 cache_dir: Path = CACHE_DIR) -> Context:
    """The context one cell's hooks receive."""
    return Context(registry=registry, seed=cell.seed, metrics=list(cell.metrics),
                   valid_metric=cell.valid_metric, device=default_device(), cell=cell,
                   cache_dir=cache_dir, workdir=cache_dir / "cells",
                   log_metrics=(log.metrics if log else (lambda m, step=None: None)))


def run_cell(cell: Cell, dataset: Dataset, registry: Registry, log: Any = None,
             cache_dir: Path = CACHE_DIR, setup: Optional[Callable[[Context], None]] = None,
             part: str = "test", ctx: Optional[Context] = None
             ) -> tuple[dict[str, float], Any, Context]:
    """Train and test one cell; returns (test metrics, ScoreResult, context). Raises on failure.

    ``part="valid"`` scores the validation split instead: the tuner's objective, which
    must never see test. ``ctx``: a context made by :func:`cell_context` (the caller
    keeps it for ``bench_on_cell_end`` when the cell fails)."""
    seed_everything(cell.seed)
    if ctx is None:
        ctx = cell_context(cell, registry, log, cache_dir)
    if setup:
        setup(ctx)
    hook = registry.pm.hook
    hook.bench_on_cell_start(cell=cell, ctx=ctx)
    memory.reset_peak()  # peak_rss_mb is this cell's, not the process's so far
    t0 = time.perf_counter()
    with count_optimizer_steps() as steps:
        trained = ctx.train(cell.method.name, cell.method_params, dataset)
    # a bare model's .history is read too; the dict is logged after scoring, so a scorer
    # may add its own figures to it (TTA timings)
    model, history = trained.model, trained.history
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = ctx.score(model, dataset, part, list(cell.metrics))
    eval_s = time.perf_counter() - t1
    metrics = dict(result.metrics)
    _check_finite(metrics, cell.metrics, part)
    timing = {"train_seconds": train_s, "eval_seconds": eval_s,
              "peak_rss_mb": memory.peak_rss_mb(),
              "optimizer_steps": float(steps[0])}
    timing.update({k: float(v) for k, v in history.items() if isinstance(v, (int, float))})
    if log:
        log.metrics({**metrics, **timing})
        log_cell_outputs(log, result, dataset, cell)
    return {**metrics, **timing}, result, ctx


def _check_finite(metrics: dict[str, float], asked: tuple[str, ...], part: str) -> None:
    """A NaN or infinite metric fails the cell with a message, never a "finished" row."""
    bad = {m: metrics[m] for m in asked if m in metrics
           and (not isinstance(metrics[m], (int, float)) or not math.isfinite(metrics[m]))}
    if bad:
        shown = ", ".join(f"{m} = {v}" for m, v in bad.items())
        raise BenchError(f"{part} metric(s) not finite: {shown} (the model's scores or the "
                         "metric are undefined here); the cell is failed, not recorded.")


class Interrupted(BaseException):
    """SIGINT/SIGTERM reached the driver; the runs it held are already marked KILLED."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or signal.Signals(signum).name)
        self.signum = signum
        self.message = message

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into :class:`Interrupted` while a grid runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _record_tuning(tracker: Any, run_id: str, cell: Cell) -> None:
    """A finished run found by a tuned run (``bench tune --then-run``) whose tuned config
    is the one it already ran (same hash: the search chose the params it had) gets the
    tuning's tags, so the board shows the search that chose it instead of "untuned"."""
    tuning = {k: v for k, v in getattr(cell, "tags", {}).items()
              if k.startswith(("bench.tuning_", "bench.tuned_"))}
    if run_id and tuning:
        tracker.tag_run(run_id, tuning)


def cell_hash(cell: Cell, split_id: str, registry: Registry) -> str:
    """A cell's identity for resume (and the hash `bench run --dry-run` lists): its resolved
    config, split id and every plugin it uses, with versions."""
    return cell.content_hash(split_id, registry.cell_plugins(cell))


def cell_tags(cell: Cell, dataset: Any, registry: Registry) -> tuple[str, dict[str, str]]:
    """(cell hash, MLflow tags) of a cell on its prepared dataset (or the error preparing it)."""
    used = registry.cell_plugins(cell)
    plugin = registry.plugins_tag(used)
    split_id = dataset.split_id if isinstance(dataset, (Dataset, TaskData)) else "unavailable"
    h = cell_hash(cell, split_id, registry)
    tags = {HASH_TAG: h, "bench.method": cell.method.key, "bench.method_name": cell.method.name,
            "bench.dataset": cell.dataset.key, "bench.seed": str(cell.seed),
            "bench.split_id": split_id, "bench.task": cell.task, "bench.plugin": plugin,
            "bench.protocol_id": protocol_id(
                cell, dataset.protocol if isinstance(dataset, TaskData) else None),
            **getattr(cell, "tags", {})}
    return h, tags


def _resources(cell: Cell, registry: Registry) -> dict:
    """A cell's resource request for Ray: the method spec's, overridden by the suite's."""
    spec = registry.catalogue.methods.get(cell.method.name)
    out = dict(getattr(spec, "resources", None) or {})
    override = getattr(cell.method, "resources", None)
    if override is not None:
        out.update(override.model_dump(exclude_none=True) if hasattr(override, "model_dump")
                   else dict(override))
    return out


def run_suite(suite: Suite, cells: list[Cell], registry: Registry, *, force: bool = False,
              tracking_uri: Optional[str] = None, progress: Any = None,
              cache_dir: Path = CACHE_DIR, jobs: int = 1, executor: str = "local",
              address: Optional[str] = None, threads: Optional[int] = None,
              stale_after: Optional[float] = None, poll: float = 2.0) -> list[CellResult]:
    """Run every cell; a failing cell is recorded and the grid goes on.

    Each cell is claimed in the tracking store before it runs (:mod:`harness.cell_claims`), so
    concurrent drivers on one suite and a driver restarted after a crash run every cell
    once. The cells run on ``executor`` (this process, ``jobs`` local worker processes, or
    Ray); results come back in the suite's cell order whatever order they finished in.
    SIGINT/SIGTERM mark the held runs KILLED and raise :class:`Interrupted`.
    """
    from .executors.local import discard_prestarted, prestart_workers

    if executor == "local" and jobs > 1:
        prestart_workers(jobs, threads)  # their start-up overlaps opening the store
    try:
        return _run_grid(suite, cells, registry, force, tracking_uri, progress, cache_dir,
                         jobs, executor, address, threads, stale_after, poll)
    finally:
        discard_prestarted()  # the grid never started (e.g. the store failed): kill them


def _run_grid(suite, cells, registry, force, tracking_uri, progress, cache_dir, jobs,
              executor, address, threads, stale_after, poll) -> list[CellResult]:
    from .cell_claims import Heartbeat, claim_cell
    from .executors import CellJob, make_executor
    from .tracking import Tracker, stale_after_default

    stale_after = stale_after_default() if stale_after is None else stale_after
    tracker = Tracker(tracking_uri or suite.tracking.uri, suite.suite)
    cache_dir = Path(cache_dir).resolve()
    tracker.reap_orphans(stale_after)
    datasets: dict[str, Any] = {}
    results: dict[int, CellResult] = {}
    task = progress.add_task(f"suite {suite.suite}", total=len(cells)) if progress else None
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    parent_id = tracker.create_parent(f"{suite.suite} @ {stamp}", {"bench.suite": suite.suite})
    log_suite(tracker, suite, parent_id)
    inflight: dict[Any, tuple[int, str]] = {}  # handle -> (cell index, run id)
    ex = None
    with _signals_raise(), Heartbeat(tracker, min(30.0, stale_after / 4)) as beat:
        beat.add(parent_id)
        try:
            ex = make_executor(executor, jobs, address, threads, registry, datasets)
            pending = list(range(len(cells)))
            deferred: list[int] = []
            while pending or inflight or deferred:
                while pending and len(inflight) < ex.capacity:
                    i = pending.pop(0)
                    cell = cells[i]
                    if progress:
                        progress.update(task, description=cell.label)
                    key = cell.dataset.key
                    if key not in datasets:
                        try:
                            datasets[key] = prepare_dataset(cell.dataset, cell.task, registry,
                                                            cache_dir)
                        except Exception as exc:  # every cell of it fails, the rest goes on
                            datasets[key] = exc
                    dataset = datasets[key]
                    h, tags = cell_tags(cell, dataset, registry)
                    got = claim_cell(tracker, h, cell.run_name, tags, parent_id, stale_after, force)
                    if got.state == "finished":
                        _record_tuning(tracker, got.run_id, cell)
                        results[i] = CellResult(cell, "skipped", _metric_names(got.metrics),
                                                cell_hash=h)
                        if progress:
                            progress.advance(task)
                        continue
                    if got.state == "busy":
                        deferred.append(i)
                        continue
                    beat.add(got.run_id)
                    tracker.log_cell_config(got.run_id, cell.resolved())
                    job = CellJob(cell, tracker.uri, got.run_id, str(cache_dir), h,
                                  sys_path=list(sys.path), threads=threads,
                                  resources=_resources(cell, registry))
                    inflight[ex.submit(job)] = (i, got.run_id)
                if inflight:
                    for handle, outcome in ex.wait(list(inflight), timeout=1.0):
                        i, run_id = inflight.pop(handle)
                        if not outcome.ended:
                            tracker.end_run(run_id, outcome.status,
                                            {"bench.error": outcome.error[:4000]} if outcome.error else {})
                        beat.discard(run_id)
                        results[i] = CellResult(cells[i], outcome.status, outcome.metrics,
                                                outcome.error, outcome.seconds,
                                                cell_tags(cells[i], datasets[cells[i].dataset.key],
                                                          registry)[0])
                        if progress:
                            progress.advance(task)
                elif deferred and not pending:
                    # cells another live driver holds: look again until they end either way
                    if progress:
                        progress.update(task, description=f"waiting for {len(deferred)} cell(s) "
                                                          "another bench process is running")
                    time.sleep(poll)
                    pending, deferred = deferred, []
        except Interrupted as stop:
            held = [run_id for _, run_id in inflight.values()]
            if ex is not None:
                ex.shutdown(kill=True)
            for run_id in held:
                tracker.end_run(run_id, "killed", {"bench.killed_reason": stop.args[0]})
            tracker.end_parent(parent_id, "killed")
            labels = ", ".join(cells[i].label for i, _ in inflight.values()) or "none"
            stop.message = (f"interrupted by {stop.args[0]}: marked the running cell(s) ({labels}) "
                            f"and this invocation KILLED; {len(results)} of {len(cells)} cell(s) "
                            "were done and stay recorded. Rerun the same command to resume.")
            raise
        except BaseException:
            if ex is not None:
                ex.shutdown(kill=True)
            for _, run_id in inflight.values():
                tracker.end_run(run_id, "failed", {"bench.error": "the driver stopped"})
            tracker.end_parent(parent_id, "failed")
            raise
    ex.shutdown()
    tracker.end_parent(parent_id, "failed" if any(r.status == "failed" for r in results.values())
                       else "finished")
    return [results[i] for i in range(len(cells))]


def _metric_names(metrics: dict[str, float]) -> dict[str, float]:
    return {metric_name_from_mlflow(k): v for k, v in metrics.items()}


def _notify_end(registry, cell, ctx, res, log) -> None:
    """``bench_on_cell_end`` for every cell that ran, finished or failed. An observer's own
    error is recorded on the cell's run and never changes the cell's status."""
    try:
        registry.pm.hook.bench_on_cell_end(cell=cell, ctx=ctx, result=res)
    except Exception as exc:
        log.text(traceback.format_exc(), "on_cell_end_traceback.txt")
        log.tags({"bench.observer_error": f"{type(exc).__name__}: {exc}"[:4000]})




def protocol_id(cell: Cell, task_protocol: Optional[dict] = None) -> str:
    """Evaluation protocol identity: cells are comparable only when this matches.

    Ranking tasks share the full-ranking protocol; a generated task brings its own.
    """
    import hashlib

    if task_protocol is not None:
        proto = {"task": cell.task, "protocol": task_protocol,
                 "metrics": sorted(cell.metrics), "valid_metric": cell.valid_metric}
    else:
        proto = {"task": cell.task, "ranking": "full", "exclude": "train+valid",
                 "tie_break": "item_id", "metrics": sorted(cell.metrics),
                 "valid_metric": cell.valid_metric}
    return hashlib.sha256(json.dumps(proto, sort_keys=True, default=str).encode()).hexdigest()[:10]
