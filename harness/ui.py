"""``bench ui``: the MLflow UI on a suite's store, opened on the runs table.

MLflow's defaults (4 gunicorn/uvicorn workers) take minutes to start and lose workers on a
two-core machine; one worker serves a single user well. MLflow 3 opens an experiment in
its "Model training" view, whose landing page is not the runs table, so the URL printed
is the runs page itself (``/#/experiments/<id>/runs``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from . import tracking

MODEL_TRAINING_NOTE = ("MLflow 3 may open an experiment on its 'Model training' overview; "
                       "the runs table with every cell is the 'Runs' tab, which the URL above "
                       "opens directly (nested cell runs sit under each `bench run` parent: "
                       "expand it, or untick 'Group by parent').")


#: MLflow's "share view" mechanism: an experiment tag holding a runs-table view state,
#: opened with ``?viewStateShareKey=<key>`` (what the UI's Share button writes)
VIEW_KEY = "bench-cells"
VIEW_TAG = "mlflow.sharedViewState." + VIEW_KEY


def runs_page(base_url: str, experiment_id: str, view: Optional[str] = None) -> str:
    url = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return f"{url}?viewStateShareKey={view}" if view else url


def cells_view_state(metrics: list[str]) -> dict:
    """The runs table as a leaderboard: only cell runs, grouped (and expanded) by method,
    the suite's test metrics as columns (a group row shows their mean over seeds)."""
    from .scoring import mlflow_name

    columns = ["attributes.`Dataset`"] + [f"metrics.`{mlflow_name(m)}`" for m in metrics]
    return {"searchFilter": "tags.`bench.kind` = 'cell'", "orderByKey": "attributes.start_time",
            "orderByAsc": False, "selectedColumns": columns,
            "groupBy": {"aggregateFunction": "average",
                        "groupByKeys": [{"mode": "tag", "groupByData": "bench.method"}]},
            "groupsExpanded": {}}


def publish_cells_view(uri: str, experiment: str, metrics: list[str]) -> Optional[str]:
    """Write the cells view onto the suite's experiment; its experiment id, or None when
    the store or experiment does not exist yet (nothing is created)."""
    import json

    uri = tracking.absolute_uri(uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix):]).exists():
        return None
    client, _ = tracking.open_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    client.set_experiment_tag(exp.experiment_id, VIEW_TAG, json.dumps(cells_view_state(metrics)))
    return exp.experiment_id


def experiment_pages(uri: str, base_url: str, experiment: Optional[str] = None
                     ) -> list[tuple[str, str]]:
    """(experiment name, runs-page URL) for one experiment or every one with runs; empty
    for a SQLite store that does not exist yet (it is not created)."""
    uri = tracking.absolute_uri(uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix):]).exists():
        return []
    client, _ = tracking.open_client(uri)
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        return [] if exp is None else [(exp.name, runs_page(base_url, exp.experiment_id))]
    return [(e.name, runs_page(base_url, e.experiment_id)) for e in client.search_experiments()
            if e.name != "Default"]


def mlflow_ui_command(uri: str, host: str, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking.absolute_uri(uri),
            "--host", host, "--port", str(port), "--workers", str(workers)]
