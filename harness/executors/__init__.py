"""Where a suite's cells run: in this process, in a pool of local worker processes
(``--jobs N``), or as Ray tasks (``--executor ray``).

The driver (:func:`harness.runner.run_suite`) claims each cell in the tracking store and
hands the executor a :class:`CellJob`; whatever runs the job logs into that claimed run,
so a cell's run looks the same whichever executor ran it.
"""
from __future__ import annotations

from .base import CellJob, CellOutcome, Executor, execute_job
from .local import PoolExecutor, SequentialExecutor


def make_executor(kind: str = "local", jobs: int = 1, address: str | None = None,
                  threads: int | None = None, registry=None, datasets=None) -> Executor:
    """``local`` with ``jobs == 1`` runs in this process; ``jobs > 1`` one cell in this
    process and ``jobs - 1`` in a process pool;
    ``ray`` Ray tasks (a local Ray with ``jobs`` CPUs, or the cluster at ``address``)."""
    if kind == "ray":
        from .ray_tasks import RayExecutor

        return RayExecutor(address=address, cpus=jobs, threads=threads)
    if kind != "local":
        raise ValueError(f"unknown executor '{kind}' (local, ray)")
    if jobs <= 1:
        return SequentialExecutor(registry=registry, datasets=datasets)
    return PoolExecutor(jobs, threads=threads, registry=registry, datasets=datasets)


__all__ = ["CellJob", "CellOutcome", "Executor", "execute_job", "make_executor",
           "PoolExecutor", "SequentialExecutor"]
