"""MLflow tracking: experiment per suite, a parent run per invocation, a nested run per cell.

MLflow is imported lazily: it is slow to import and ``bench validate``/``bench ls`` never
need it.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from .names import mlflow_name

STATUS_TAG = "bench.status"
HASH_TAG = "bench.cell_hash"


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


class Tracker:
    def __init__(self, uri: str, experiment: str) -> None:
        import logging

        import mlflow

        for name in ("alembic", "mlflow", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.mlflow = mlflow
        uri = absolute_uri(uri)
        self.uri = uri
        mlflow.set_tracking_uri(uri)
        exp = mlflow.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else mlflow.create_experiment(experiment)
        self.client = mlflow.MlflowClient(uri)

    def finished_cells(self) -> dict[str, dict[str, float]]:
        """cell hash -> metrics of its latest finished run."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{STATUS_TAG}` = 'finished'",
            order_by=["attributes.start_time ASC"], max_results=50000)
        return {r.data.tags[HASH_TAG]: dict(r.data.metrics) for r in runs if HASH_TAG in r.data.tags}

    @contextmanager
    def parent_run(self, name: str, tags: dict[str, str]) -> Iterator[Any]:
        with self.mlflow.start_run(experiment_id=self.experiment_id, run_name=name,
                                   tags={**tags, "bench.kind": "invocation", "bench.git_sha": git_sha(),
                                         "mlflow.source.git.commit": git_sha(),
                                         **{f"bench.version.{k}": v for k, v in versions().items()}}) as run:
            yield run

    @contextmanager
    def cell_run(self, name: str, resolved: dict, tags: dict[str, str]) -> Iterator["CellLog"]:
        with self.mlflow.start_run(experiment_id=self.experiment_id, run_name=name, nested=True,
                                   tags={**tags, "bench.kind": "cell", STATUS_TAG: "running"}) as run:
            log = CellLog(self.mlflow, self.client, run.info.run_id)
            log.params(resolved)
            log.json(resolved, "resolved_config.json")
            yield log

    @contextmanager
    def nested_run(self, name: str, tags: dict[str, str]) -> Iterator["CellLog"]:
        """A run nested in the current one that is not a cell (a tuning study, a trial)."""
        with self.mlflow.start_run(experiment_id=self.experiment_id, run_name=name, nested=True,
                                   tags=tags) as run:
            yield CellLog(self.mlflow, self.client, run.info.run_id)


class CellLog:
    """Logging handle for one cell's run."""

    def __init__(self, mlflow, client, run_id: str) -> None:
        self.mlflow, self.client, self.run_id = mlflow, client, run_id

    def metrics(self, values: dict[str, float], step: Optional[int] = None) -> None:
        clean = {mlflow_name(k): float(v) for k, v in values.items()}
        self.mlflow.log_metrics(clean, step=step)

    def tags(self, values: dict[str, str]) -> None:
        self.mlflow.set_tags(values)

    def params(self, values: dict) -> None:
        """Nested params, flattened (:func:`flatten_params`) and cut to MLflow's limits."""
        self.mlflow.log_params({k[:250]: v[:6000] for k, v in flatten_params(values).items()})

    def text(self, content: str, filename: str) -> None:
        self.mlflow.log_text(content, filename)

    def json(self, content: Any, filename: str) -> None:
        self.mlflow.log_dict(content, filename)

    def file(self, path: Path, folder: Optional[str] = None) -> None:
        self.mlflow.log_artifact(str(path), folder)

    def tmpdir(self) -> tempfile.TemporaryDirectory:
        return tempfile.TemporaryDirectory(prefix="bench-")

    def input(self, name: str, digest: str, task: str = "") -> None:
        """The cell's dataset as an MLflow input (shown in the UI's Datasets column)."""
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        dataset = MetaDataset(source=HTTPDatasetSource(f"bench://{name}/{digest}"),
                              name=name, digest=digest[:36] or None)
        tags = {"split_id": digest, "task": task} if task else {"split_id": digest}
        self.mlflow.log_input(dataset, context="test", tags=tags)


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
    out: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=page_size,
                                  order_by=order_by, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


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
