"""``--executor ray``: each cell is a Ray task with its method's resource request.

Without ``--address`` a local Ray is started with ``--jobs`` CPUs (and stopped at the
end); with one, the driver joins that cluster (``auto``, ``ray://head:10001``, ...). A task
logs into the cell's claimed run in the driver's tracking store, so the store must be one
every node reaches (an ``mlflow server`` or a database; a SQLite file only on one machine
or a shared file system). The split cache is content-addressed: workers sharing the
driver's cache folder reuse its splits, others build their own.
"""
from __future__ import annotations

import os
from typing import Any, Optional

from ..api import BenchError
from .base import CellJob, CellOutcome, execute_job

#: environment a task needs to see the same plugins and settings as the driver
FORWARDED_ENV = ("BENCH_PLUGINS", "BENCH_DISABLE_PLUGIN_AUTOLOAD", "BENCH_DATA_HOME",
                 "BENCH_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH",
                 "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def _run_on_ray(job: CellJob) -> CellOutcome:
    return execute_job(job)


class RayExecutor:
    def __init__(self, address: Optional[str] = None, cpus: int = 1,
                 threads: Optional[int] = None) -> None:
        try:
            import ray
        except ImportError:
            raise BenchError("--executor ray needs Ray: pip install 'bench[ray]' "
                             "(or pip install 'ray>=2.40').") from None
        self.ray = ray
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env.setdefault("OMP_NUM_THREADS", str(threads or 1))
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env},
                                      "include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = cpus
            try:
                ray.init(**kwargs)
            except Exception as exc:
                raise BenchError(f"Ray could not start or join a cluster at "
                                 f"{address or '(local)'}: {type(exc).__name__}: {exc}") from None
        total = int(ray.cluster_resources().get("CPU", cpus))
        self.capacity = max(1, total)
        self.threads = threads
        self._remote = ray.remote(_run_on_ray)

    def submit(self, job: CellJob) -> Any:
        res = job.resources or {}
        cpus = float(res.get("cpus", 1))
        job.threads = self.threads or max(1, int(cpus))
        options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": float(res.get("gpus", 0)),
                                   "max_retries": 0}
        if res.get("memory_gb"):
            options["memory"] = int(float(res["memory_gb"]) * 2**30)
        return self._remote.options(**options).remote(job)

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, CellOutcome]]:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        out = []
        for ref in done:
            try:
                out.append((ref, self.ray.get(ref)))
            except Exception as exc:  # the task's worker died, or the node went away
                out.append((ref, CellOutcome("failed", error=f"Ray task failed: "
                                             f"{type(exc).__name__}: {str(exc)[:2000]}")))
        return out

    def shutdown(self, kill: bool = False) -> None:
        if self._started:
            self.ray.shutdown()
