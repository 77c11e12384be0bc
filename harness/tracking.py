"""MLflow tracking: experiment per suite, a parent run per invocation, a nested run per cell.

Every handle here talks to the store through an explicit ``MlflowClient`` and run id, not
MLflow's process-global "active run", so a cell can be logged from a worker process or a
Ray task exactly as from the driver.

MLflow is imported lazily: it is slow to import and ``bench validate``/``bench ls`` never
need it. Opening a store checks it first (:mod:`harness.stores`), so a wrong, unreachable
or read-only store fails in seconds with one paragraph instead of minutes of retries.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .names import mlflow_name
from .stores import StoreError, check_store, describe_failure, lost_insert_race, store_lock

STATUS_TAG = "bench.status"
HASH_TAG = "bench.cell_hash"
KIND_TAG = "bench.kind"
OWNER_TAG = "bench.owner"
HEARTBEAT_TAG = "bench.heartbeat"
#: bench.status value -> MLflow run status
TERMINAL = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
#: a RUNNING run whose heartbeat is older than this is taken to be orphaned (seconds)
DEFAULT_STALE_AFTER = 300.0
PAGE_SIZE = 1000

__all__ = ["Tracker", "CellLog", "StoreError", "STATUS_TAG", "HASH_TAG", "absolute_uri",
           "iter_runs", "process_owner", "owner_alive", "stale_after_default"]


def flatten_params(d: dict, prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow params: dotted keys, lists as JSON, the rest as text."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_params(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except Exception:  # no git, not a checkout
        return "unknown"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("bench", "torch", "ranx", "mlflow", "optuna", "transformers", "trl", "peft"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def absolute_uri(uri: str) -> str:
    """Pin a relative SQLite store to the current folder (MLflow caches stores by URI
    string, so a relative one would keep pointing wherever it was first opened)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def stale_after_default() -> float:
    """``$BENCH_STALE_AFTER`` seconds, else :data:`DEFAULT_STALE_AFTER`."""
    try:
        return float(os.environ.get("BENCH_STALE_AFTER", DEFAULT_STALE_AFTER))
    except ValueError:
        return DEFAULT_STALE_AFTER


# --- who owns a RUNNING run -------------------------------------------------------------------

def _start_ticks(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (so a reused pid is not mistaken for the owner)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_owner() -> str:
    """``host:pid:start`` of this process, written on every run it holds."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid()) or '?'}"


def owner_alive(owner: str) -> Optional[bool]:
    """False when ``owner`` is provably dead (same host, its process gone or replaced),
    True when it is provably alive, None when this host cannot tell (another machine)."""
    try:
        host, pid, start = owner.rsplit(":", 2)
        pid_i = int(pid)
    except ValueError:
        return None
    if host != socket.gethostname() or start == "?" or not Path("/proc/self/stat").exists():
        return None
    return _start_ticks(pid_i) == start


# --- reading runs -----------------------------------------------------------------------------

def iter_runs(client: Any, experiment_ids: list[str], filter_string: str = "",
              order_by: Optional[list[str]] = None, page_size: int = PAGE_SIZE) -> Iterator[Any]:
    """Every run that matches, page by page (MLflow caps one search at 50,000 runs)."""
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string,
                                  order_by=order_by, max_results=page_size, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


class Tracker:
    """One suite's experiment in one store."""

    def __init__(self, uri: str, experiment: str) -> None:
        import logging

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # an HTTP store that stops answering mid-grid: a few retries, not minutes of them
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        import mlflow

        for name in ("alembic", "mlflow", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.mlflow = mlflow
        uri = check_store(absolute_uri(uri))
        self.uri = uri
        self.experiment = experiment
        try:
            # MLflow creates a new SQL store's schema without a lock: two first runs on one
            # file race it. The first connection and the experiment are made under a lock.
            with store_lock(uri):
                mlflow.set_tracking_uri(uri)
                self.client = mlflow.MlflowClient(uri)
                exp = self.client.get_experiment_by_name(experiment)
                self.experiment_id = (exp.experiment_id if exp
                                      else self.client.create_experiment(experiment))
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(describe_failure(uri, exc)) from None
        self.owner = process_owner()

    # -- reading ---------------------------------------------------------------------------
    def runs(self, filter_string: str = "", order_by: Optional[list[str]] = None,
             page_size: int = PAGE_SIZE) -> Iterator[Any]:
        return iter_runs(self.client, [self.experiment_id], filter_string, order_by, page_size)

    def cell_runs(self, cell_hash: str) -> list[Any]:
        """Every (not deleted) cell run of one cell hash, oldest first."""
        runs = self.runs(f"tags.`{HASH_TAG}` = {_quote(cell_hash)}",
                         order_by=["attributes.start_time ASC"])
        return [r for r in runs if r.data.tags.get(KIND_TAG, "cell") == "cell"]

    def finished(self, cell_hash: str) -> Optional[dict[str, float]]:
        """Metrics of the latest finished run of ``cell_hash``, or None."""
        done = [r for r in self.cell_runs(cell_hash) if r.data.tags.get(STATUS_TAG) == "finished"]
        return dict(done[-1].data.metrics) if done else None

    def finished_cells(self) -> dict[str, dict[str, float]]:
        """cell hash -> metrics of its latest finished run, over every run in the store."""
        out: dict[str, dict[str, float]] = {}
        for r in self.runs(f"tags.`{STATUS_TAG}` = 'finished'",
                           order_by=["attributes.start_time ASC"]):
            if HASH_TAG in r.data.tags:
                out[r.data.tags[HASH_TAG]] = dict(r.data.metrics)
        return out

    # -- writing ---------------------------------------------------------------------------
    def create_parent(self, name: str, tags: dict[str, str]) -> str:
        """The invocation's RUNNING run (by id: nothing process-global), with holder and
        heartbeat so a later run can tell when it was orphaned."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags={
            **tags, KIND_TAG: "invocation", "bench.git_sha": git_sha(),
            "mlflow.source.git.commit": git_sha(), OWNER_TAG: self.owner,
            HEARTBEAT_TAG: f"{time.time():.0f}", STATUS_TAG: "running", "mlflow.runName": name,
            **{f"bench.version.{k}": v for k, v in versions().items()}})
        return run.info.run_id

    @contextmanager
    def parent_run(self, name: str, tags: dict[str, str]) -> Iterator[Any]:
        """The invocation's run (MLflow's active run, so tuning trials nest under it).

        On an exception it ends FAILED; :meth:`end_run` before leaving ends it otherwise."""
        with self.mlflow.start_run(experiment_id=self.experiment_id, run_name=name,
                                   tags={**tags, KIND_TAG: "invocation", "bench.git_sha": git_sha(),
                                         "mlflow.source.git.commit": git_sha(),
                                         OWNER_TAG: self.owner, HEARTBEAT_TAG: f"{time.time():.0f}",
                                         **{f"bench.version.{k}": v for k, v in versions().items()}}) as run:
            yield run

    def create_cell_run(self, name: str, tags: dict[str, str],
                        parent_id: Optional[str] = None) -> str:
        """A RUNNING cell run holding the cell's claim: hash, owner and heartbeat."""
        all_tags = {**tags, KIND_TAG: "cell", STATUS_TAG: "running", OWNER_TAG: self.owner,
                    HEARTBEAT_TAG: f"{time.time():.0f}", "mlflow.runName": name}
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        return run.info.run_id

    @contextmanager
    def cell_run(self, name: str, resolved: dict, tags: dict[str, str],
                 parent_id: Optional[str] = None) -> Iterator["CellLog"]:
        """One cell's run around a block: FINISHED when the block ends, FAILED (with
        ``bench.status=failed`` unless the block set one) when it raises."""
        run_id = self.create_cell_run(name, tags, parent_id)
        self.log_cell_config(run_id, resolved)
        log = CellLog(self.mlflow, self.client, run_id)
        try:
            yield log
        except BaseException as exc:
            status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
            self.end_run(run_id, status, {"bench.error": f"{type(exc).__name__}: {exc}"[:4000]})
            raise
        status = self.client.get_run(run_id).data.tags.get(STATUS_TAG)
        self.end_run(run_id, status if status in TERMINAL else "finished")

    @contextmanager
    def nested_run(self, name: str, tags: dict[str, str]) -> Iterator["CellLog"]:
        """A run nested in the current one that is not a cell (a tuning study, a trial)."""
        with self.mlflow.start_run(experiment_id=self.experiment_id, run_name=name, nested=True,
                                   tags=tags) as run:
            yield CellLog(self.mlflow, self.client, run.info.run_id)

    def log_cell_config(self, run_id: str, resolved: dict) -> None:
        log = CellLog(self.mlflow, self.client, run_id)
        log.params(resolved)
        log.json(resolved, "resolved_config.json")

    def end_run(self, run_id: str, status: str, extra_tags: Optional[dict[str, str]] = None) -> None:
        """Set ``bench.status`` and the MLflow status together (they must agree)."""
        self.tag_run(run_id, {STATUS_TAG: status, **(extra_tags or {})})
        self.client.set_terminated(run_id, TERMINAL[status])

    def tag_run(self, run_id: str, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, v)

    def end_parent(self, run_id: str, status: str) -> None:
        self.client.set_tag(run_id, STATUS_TAG, status)
        self.client.set_terminated(run_id, TERMINAL[status])

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def beat(self, run_ids: Iterable[str]) -> None:
        now = f"{time.time():.0f}"
        for run_id in list(run_ids):
            try:
                self.client.set_tag(run_id, HEARTBEAT_TAG, now)
            except Exception:  # a run deleted or ended meanwhile; the next beat tries again
                pass

    # -- orphans ---------------------------------------------------------------------------
    def is_live(self, run: Any, stale_after: float) -> bool:
        """Whether a RUNNING run's holder is still at work: a provably dead owner process
        is not; otherwise its heartbeat must be fresher than ``stale_after`` seconds."""
        tags = run.data.tags
        alive = owner_alive(tags.get(OWNER_TAG, ""))
        if alive is not None:
            return alive
        try:
            beat = float(tags.get(HEARTBEAT_TAG, ""))
        except ValueError:
            beat = (run.info.start_time or 0) / 1000.0
        return time.time() - beat < stale_after

    def mark_killed(self, run: Any, reason: str) -> None:
        tags = run.data.tags
        extra = {"bench.killed_reason": reason[:500]}
        if tags.get(KIND_TAG) in ("cell", "invocation", "trial") or STATUS_TAG in tags:
            self.end_run(run.info.run_id, "killed", extra)
        else:
            self.client.set_tag(run.info.run_id, "bench.killed_reason", reason[:500])
            self.client.set_terminated(run.info.run_id, "KILLED")

    def reap_orphans(self, stale_after: float) -> list[str]:
        """Mark every RUNNING run of the experiment whose holder is gone KILLED (with
        ``bench.status=killed``); returns their ids."""
        reaped = []
        for run in list(self.runs("attributes.status = 'RUNNING'")):
            if run.data.tags.get(OWNER_TAG) == self.owner or self.is_live(run, stale_after):
                continue
            who = run.data.tags.get(OWNER_TAG, "an unknown process")
            self.mark_killed(run, f"orphaned: holder {who} is gone (found by {self.owner})")
            reaped.append(run.info.run_id)
        return reaped


class CellLog:
    """Logging handle for one run, by id (works in any process that can reach the store)."""

    def __init__(self, mlflow, client, run_id: str) -> None:
        self.mlflow, self.client, self.run_id = mlflow, client, run_id

    def metrics(self, values: dict[str, float], step: Optional[int] = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(mlflow_name(k), float(v), now, step or 0) for k, v in values.items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def tags(self, values: dict[str, str]) -> None:
        for k, v in values.items():
            self.client.set_tag(self.run_id, k, v)

    def params(self, values: dict) -> None:
        """Nested params, flattened (:func:`flatten_params`) and cut to MLflow's limits."""
        from mlflow.entities import Param

        items = [Param(k[:250], v[:6000]) for k, v in flatten_params(values).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def text(self, content: str, filename: str) -> None:
        self.client.log_text(self.run_id, content, filename)

    def json(self, content: Any, filename: str) -> None:
        self.client.log_dict(self.run_id, content, filename)

    def file(self, path: Path, folder: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def tmpdir(self) -> tempfile.TemporaryDirectory:
        return tempfile.TemporaryDirectory(prefix="bench-")

    def input(self, name: str, digest: str, task: str = "") -> None:
        """The cell's dataset as an MLflow input (shown in the UI's Datasets column)."""
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        dataset = MetaDataset(source=HTTPDatasetSource(f"bench://{name}/{digest}"),
                              name=name, digest=digest[:36] or None)
        tags = {"split_id": digest, "task": task} if task else {"split_id": digest}
        from mlflow.tracking.fluent import _create_dataset_input

        inputs = [_create_dataset_input(dataset, "test", tags)]
        for attempt in range(INPUT_ATTEMPTS):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except Exception as exc:  # noqa: BLE001 - only a lost insert race is retried
                if attempt + 1 == INPUT_ATTEMPTS or not lost_insert_race(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))


#: how often a cell retries linking its dataset after losing the insert race to another worker
INPUT_ATTEMPTS = 4


def cell_log(uri: str, run_id: str) -> CellLog:
    """A :class:`CellLog` for a run made elsewhere (a worker logging the driver's claim)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    return CellLog(mlflow, mlflow.MlflowClient(uri), run_id)


def lock_or_null(uri: str):
    """The store's claim lock where one exists (SQLite), else a no-op."""
    return store_lock(uri, "claims") if uri.startswith("sqlite:") else nullcontext()


# --- reading the store (leaderboards, `bench results`, report scripts) ----------------------
#
# Every reader of finished runs goes through these functions, so the leaderboard, the
# results table and the report scripts agree on what a "finished cell" is and none of them
# is capped at one page of search results.

FINISHED_CELLS = f"tags.`bench.kind` = 'cell' and tags.`{STATUS_TAG}` = 'finished'"


def redact_uri(url: str) -> str:
    """A store or database URL safe to print: never a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def quiet_mlflow() -> None:
    """MLflow, alembic and the artifact progress bar stay silent while we only read."""
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("alembic", "mlflow", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)


def open_client(uri: str) -> tuple[Any, str]:
    """(MlflowClient, absolute URI) for reading a store without starting any run."""
    quiet_mlflow()
    import mlflow

    uri = absolute_uri(uri)
    return mlflow.MlflowClient(uri), uri


def search_all_runs(client: Any, experiment_ids: list[str], filter_string: str = "",
                    order_by: Optional[list[str]] = None, page_size: int = 5000) -> list[Any]:
    """Every matching run, page by page (one ``search_runs`` call stops at its
    ``max_results``, so a large store would silently lose runs)."""
    return list(iter_runs(client, experiment_ids, filter_string, order_by, page_size))


def finished_cell_runs(client: Any, experiment_id: str) -> list[Any]:
    """All finished cell runs of an experiment (runner cells and ``bench evaluate``
    entries), oldest first."""
    return search_all_runs(client, [experiment_id], FINISHED_CELLS,
                           order_by=["attributes.start_time ASC", "attributes.run_id ASC"])


def download_json(client: Any, run_id: str, artifact_path: str) -> Optional[Any]:
    """A run's JSON artifact, or None when the run has none under that path."""
    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        try:
            path = client.download_artifacts(run_id, artifact_path, tmp)
        except Exception:  # no such artifact (a non-ranking task, an old run)
            return None
        return json.loads(Path(path).read_text())
