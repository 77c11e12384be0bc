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


def runs_page(base_url: str, experiment_id: str) -> str:
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"


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
