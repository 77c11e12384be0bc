"""Local executors: in this process (the default), or N cells at once (``--jobs N``).

``--jobs N`` runs one cell at a time in the driver process itself (a thread; the driver
only waits otherwise) and N - 1 in spawned worker processes. A spawned worker first pays
a fixed start-up (importing torch, torch._dynamo, MLflow and ranx: about 5.5 CPU
seconds), so the driver, which has paid it already, takes a slot, and the workers are
started before the driver opens its store (``bench run``: before it imports anything), so
their start-up overlaps the driver's. On 2 idle cores, a whole ``bench run --jobs 2``
takes 0.56x the sequential command's wall time for cells of ~5.5 s, 0.59x for ~4 s and
0.64x for ~2.7 s (``benchmarks/scaleout.py``). The driver's cell runs exactly as a
sequential run's does (same code, same registry), so its metrics are the same bits.

The pool uses the ``spawn`` start method (torch's thread pools do not survive ``fork``),
gives every worker ``cores // N`` torch threads unless told otherwise, ignores Ctrl-C in
the workers (the driver decides what an interrupt means), on Linux has the kernel kill a
worker when its driver dies, so a SIGKILLed driver leaves no worker writing into a run
that a restarted driver has already taken over, and lets an idle worker told to stop end
without its interpreter's teardown (:mod:`harness.process_exit`).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
from typing import Any, Optional

from ..process_exit import skip_teardown
from .base import CellJob, CellOutcome, configure_worker, execute_job, warm_up_worker


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int, threads: Optional[int] = None) -> int:
    """``threads`` if given, else this machine's cores shared out over ``jobs`` workers
    (capped by ``OMP_NUM_THREADS`` when the user set one)."""
    if threads:
        return threads
    share = max(1, available_cores() // max(1, jobs))
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(cap)) if cap.isdigit() and int(cap) > 0 else share


class SequentialExecutor:
    """Runs each job in this process when the driver waits for it (one at a time)."""

    capacity = 1

    def __init__(self, registry: Any = None, datasets: Optional[dict] = None) -> None:
        self.registry, self.datasets = registry, datasets

    def submit(self, job: CellJob) -> CellJob:
        return job

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, CellOutcome]]:
        job = handles[0]
        if self.registry is None:
            return [(job, execute_job(job))]
        return [(job, execute_job(job, self.registry, self.datasets))]

    def shutdown(self, kill: bool = False) -> None:
        pass


def _init_worker(sys_path: list[str], threads: int) -> None:
    # first: an idle worker told to stop then exits at once, so ``shutdown()`` at the end
    # of a grid does not wait for the worker interpreter's teardown (about 1.7 s)
    skip_teardown()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    configure_worker(sys_path, threads)
    warm_up_worker()


def _spawned() -> None:
    """A no-op task: submitting one per worker makes the pool start them all now."""


#: pools started by :func:`prestart_workers`, keyed by (workers, threads), not yet adopted
_PRESTARTED: dict[tuple[int, int], cf.ProcessPoolExecutor] = {}


def _spawn_pool(workers: int, threads: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(max_workers=workers,
                                  mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_init_worker,
                                  initargs=(list(sys.path), threads))


def prestart_workers(jobs: int, threads: Optional[int] = None) -> None:
    """Start (and warm: :func:`~harness.executors.base.warm_up_worker`) the N - 1 worker
    processes of ``--jobs N`` now, before the driver has loaded anything.

    Why: a spawned worker's start-up (imports, the registry, loaded kernels) is several
    seconds the worker spends before its first cell; begun here, at the top of ``bench
    run``, it overlaps the driver's own start-up (the same imports, reading the suite,
    preparing the datasets) instead of following it. The :class:`PoolExecutor` of the run
    adopts the pool; :func:`discard_prestarted` kills one nobody adopted (the run failed
    before its grid started)."""
    workers = jobs - 1
    if workers < 1:
        return
    t = threads_per_job(jobs, threads)
    if (workers, t) in _PRESTARTED:
        return
    pool = _spawn_pool(workers, t)
    for _ in range(workers):
        pool.submit(_spawned)
    _PRESTARTED[(workers, t)] = pool


def discard_prestarted() -> None:
    """Kill the workers of every prestarted pool no run adopted."""
    while _PRESTARTED:
        _, pool = _PRESTARTED.popitem()
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)


def _run(job: CellJob) -> CellOutcome:
    return execute_job(job)


class PoolExecutor:
    """``--jobs N``: one cell in the driver process (when given the driver's registry) and
    N - 1 in spawned worker processes; without a registry, N worker processes."""

    def __init__(self, jobs: int, threads: Optional[int] = None, registry: Any = None,
                 datasets: Optional[dict] = None) -> None:
        self.capacity = jobs
        self.threads = threads_per_job(jobs, threads)
        self.registry = registry
        self.datasets = {} if datasets is None else datasets
        self.workers = jobs - 1 if registry is not None else jobs
        self._local: Optional[cf.Future] = None
        self._driver_threads: Optional[int] = None
        self._pool = self._new_pool() if self.workers else None

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        adopted = _PRESTARTED.pop((self.workers, self.threads), None)
        return adopted if adopted is not None else _spawn_pool(self.workers, self.threads)

    def submit(self, job: CellJob) -> cf.Future:
        job.threads = self.threads
        if self.registry is not None and (self._local is None or self._local.done()):
            self._local = self._run_in_driver(job)
            return self._local
        try:
            return self._pool.submit(_run, job)
        except cf.process.BrokenProcessPool:
            self._pool = self._new_pool()  # a worker died earlier: start a fresh pool
            return self._pool.submit(_run, job)

    def _run_in_driver(self, job: CellJob) -> cf.Future:
        """The job on a daemon thread of this process (a daemon, so an interrupted driver
        exits at once instead of waiting for the cell; its run is marked KILLED)."""
        if self._driver_threads is None:
            import torch

            self._driver_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)  # the driver's share of the cores
        future: cf.Future = cf.Future()
        future.set_running_or_notify_cancel()

        def work() -> None:
            try:
                future.set_result(execute_job(job, self.registry, self.datasets))
            except BaseException as exc:  # execute_job records cell errors itself
                future.set_exception(exc)

        threading.Thread(target=work, name="bench-driver-cell", daemon=True).start()
        return future

    def wait(self, handles: list[cf.Future], timeout: float) -> list[tuple[Any, CellOutcome]]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in done:
            try:
                out.append((fut, fut.result()))
            except Exception as exc:  # the worker process died (OOM kill, segfault, ...)
                where = "the driver's cell thread" if fut is self._local else "worker process"
                out.append((fut, CellOutcome("failed", error=f"{where} died: "
                                             f"{type(exc).__name__}: {exc}")))
        return out

    def shutdown(self, kill: bool = False) -> None:
        if self._pool is not None:
            if kill:
                for proc in list(getattr(self._pool, "_processes", {}).values()):
                    proc.kill()
            self._pool.shutdown(wait=not kill, cancel_futures=True)
        if self._driver_threads is not None and (self._local is None or self._local.done()):
            import torch

            torch.set_num_threads(self._driver_threads)
