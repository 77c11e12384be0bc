"""What every executor shares: the job it is handed and the code that runs a job."""
from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from ..suite import Cell


@dataclass(eq=False)  # hashable by identity: a job is its own handle in the sequential executor
class CellJob:
    """One claimed cell: everything a worker process needs to run and log it."""

    cell: Cell
    uri: str             # the tracking store (the worker logs into ``run_id`` there)
    run_id: str          # the claimed RUNNING cell run
    cache_dir: str       # absolute; shared or not, the caches are content-addressed
    cell_hash: str = ""
    #: ``sys.path`` entries of the driver, so a plugin registered by import path
    #: (``BENCH_PLUGINS``) imports in a worker too
    sys_path: list[str] = field(default_factory=list)
    threads: Optional[int] = None  # torch intra-op threads in the worker
    resources: dict = field(default_factory=dict)  # Ray: cpus, gpus, memory_gb


@dataclass
class CellOutcome:
    status: str                       # finished | failed
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    #: the worker ended the run itself (else the driver must: e.g. the worker died)
    ended: bool = False


class Executor(Protocol):
    #: cells in flight at once
    capacity: int

    def submit(self, job: CellJob) -> Any: ...

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, CellOutcome]]:
        """The handles that finished within ``timeout`` seconds, with their outcomes."""

    def shutdown(self, kill: bool = False) -> None: ...


# --- the worker side --------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def configure_worker(sys_path: list[str], threads: Optional[int]) -> None:
    """Per worker process: the driver's import path and a fixed torch thread count, so N
    workers on C cores run C/N threads each instead of oversubscribing."""
    for p in reversed(sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        import torch

        torch.set_num_threads(threads)


def warm_up_worker() -> None:
    """Pay a worker process's one-time costs before its first cell rather than inside it:
    importing torch (and torch._dynamo, which the first optimiser loads), MLflow's
    tracking store, ranx's metric kernels and numba's cached typed-list builder, and the
    plugin registry. None of it draws a random number or touches a store, so a cell's
    metrics are the same; a failure here is left for the cell to report."""
    try:
        import torch

        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        import numpy as np
        import ranx.metrics  # noqa: F401
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

        from .. import runner  # noqa: F401
        from ..typed_rows import split_rows

        split_rows(np.zeros((1, 2)), np.array([0, 1]))
        _worker_registry()
    except Exception:
        pass


def _worker_registry() -> Any:
    if "registry" not in _STATE:
        from ..registry import Registry

        _STATE["registry"] = Registry()
        _STATE["datasets"] = {}
    return _STATE["registry"]


def execute_job(job: CellJob, registry: Any = None, datasets: Optional[dict] = None) -> CellOutcome:
    """Run one claimed cell and end its run finished or failed (never raises an Exception;
    an interrupt propagates so the driver can mark the run KILLED)."""
    from pathlib import Path

    from ..artifacts import log_dataset_input
    from ..runner import CellResult, _notify_end, cell_context, prepare_dataset, run_cell
    from ..tracking import STATUS_TAG, TERMINAL, cell_log

    if registry is None:
        configure_worker(job.sys_path, job.threads)
        registry = _worker_registry()
        datasets = _STATE["datasets"]
    datasets = {} if datasets is None else datasets
    cell, cache_dir = job.cell, Path(job.cache_dir)
    log = cell_log(job.uri, job.run_id)
    t0 = time.perf_counter()
    ctx = cell_context(cell, registry, log, cache_dir)
    try:
        key = cell.dataset.key
        if key not in datasets:
            try:
                datasets[key] = prepare_dataset(cell.dataset, cell.task, registry, cache_dir)
            except Exception as exc:
                datasets[key] = exc
        dataset = datasets[key]
        if isinstance(dataset, Exception):
            raise dataset
        log.json(dataset.diagnostics, "split_diagnostics.json")
        log_dataset_input(log, dataset)
        metrics, _, ctx = run_cell(cell, dataset, registry, log, cache_dir, ctx=ctx)
        log.tags({STATUS_TAG: "finished"})
        outcome = CellOutcome("finished", metrics, seconds=time.perf_counter() - t0)
    except Exception as exc:  # failure isolation: record and go on
        error = f"{type(exc).__name__}: {exc}"
        outcome = CellOutcome("failed", error=error, seconds=time.perf_counter() - t0)
        try:
            log.text(traceback.format_exc(), "traceback.txt")
            log.tags({STATUS_TAG: "failed", "bench.error": error[:4000]})
        except Exception:  # the store itself failed; the driver ends the run
            return outcome
    _notify_end(registry, cell, ctx, CellResult(cell, outcome.status, outcome.metrics,
                                                outcome.error, outcome.seconds, job.cell_hash), log)
    try:
        log.client.set_terminated(job.run_id, TERMINAL[outcome.status])
        outcome.ended = True
    except Exception:  # the driver ends the run
        pass
    return outcome
