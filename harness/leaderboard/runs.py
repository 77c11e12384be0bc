"""Reading finished cell runs out of MLflow (the leaderboard's and `bench results`' input).

All MLflow access goes through :mod:`harness.tracking`; this module only turns runs into
:class:`RunRecord` values and decides which run stands for a cell.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Optional

from .. import tracking
from ..api import BenchError
from ..names import metric_name_from_mlflow


@dataclass
class RunRecord:
    run_id: str
    method: str
    dataset: str
    seed: str
    split_id: str
    protocol_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int

    @property
    def external(self) -> bool:
        """A run scored by ``bench evaluate`` rather than trained by the runner."""
        return self.tags.get("bench.source") == "evaluate"


def collect_runs(client: Any, experiment_id: str) -> list[RunRecord]:
    """Finished cell runs; for a repeated cell (same hash, e.g. after --force) and for a
    repeated (dataset, method, seed) the latest run wins."""
    latest: dict[Any, Any] = {}
    for r in tracking.finished_cell_runs(client, experiment_id):
        latest[r.data.tags.get(tracking.HASH_TAG, r.info.run_id)] = r
    by_cell: dict[tuple[str, str, str], RunRecord] = {}
    for r in sorted(latest.values(), key=lambda r: r.info.start_time):
        t = r.data.tags
        rec = RunRecord(r.info.run_id, t.get("bench.method", "?"), t.get("bench.dataset", "?"),
                        t.get("bench.seed", "?"), t.get("bench.split_id", "?"),
                        t.get("bench.protocol_id", "?"),
                        {metric_name_from_mlflow(k): v for k, v in r.data.metrics.items()},
                        dict(t), r.info.start_time)
        by_cell[(rec.dataset, rec.method, rec.seed)] = rec
    return list(by_cell.values())


def open_experiment(uri: str, experiment: str) -> tuple[Any, str]:
    """(client, experiment id) of a suite's experiment; a clear error when it is missing."""
    client, abs_uri = tracking.open_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise BenchError(f"the MLflow store {tracking.redact_uri(uri)} has no experiment "
                         f"'{experiment}'; run `bench run` on the suite first (same "
                         "--tracking-uri).")
    return client, exp.experiment_id


def experiment_runs(tracking_uri: str, experiment: str) -> tuple[Any, list[RunRecord]]:
    """(client, finished cell runs) of one suite's experiment, for report scripts; exits
    with a message naming the store when the suite has not been run into it."""
    client, uri = tracking.open_client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment '{experiment}' in {uri}; run the suite into this "
                         "store first (bench run SUITE --tracking-uri ...)")
    return client, collect_runs(client, exp.experiment_id)


def load_per_user(client: Any, run_id: str) -> Optional[dict[str, dict[str, float]]]:
    """``{metric: {unit id: value}}`` of a run, or None (non-ranking task, old run)."""
    return tracking.download_json(client, run_id, "per_user_metrics.json") or None


def mean_std(values: list[float], digits: int = 4, empty: str = "–") -> str:
    """'mean ± std' over seeds (just the mean for one value, ``empty`` for none; NaN skipped)."""
    values = [v for v in values if v == v]
    if not values:
        return empty
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"
