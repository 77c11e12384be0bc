"""What a run would do, without doing it: every cell with its hash and done/pending status
(``bench run --dry-run``, ``bench validate -v``).

Datasets are prepared (loaded and split, the split cached as a run would) because a cell's
hash covers its split id; no model is trained and nothing is written to the MLflow store.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import tracking
from .runner import CACHE_DIR, cell_hash, prepare_dataset
from .suite import Cell


@dataclass
class PlannedCell:
    cell: Cell
    split_id: str
    cell_hash: str
    status: str  # done | pending | dataset error: ...


def _sqlite_missing(uri: str) -> bool:
    """A SQLite store that does not exist yet (opening it would create it)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or ":memory:" in uri:
        return False
    return not Path(uri[len(prefix):]).exists()


def finished_hashes(uri: str, experiment: str) -> set[str]:
    """Hashes of the finished cells of a suite's experiment; empty for a new store (which
    is not created)."""
    uri = tracking.absolute_uri(uri)
    if _sqlite_missing(uri):
        return set()
    client, _ = tracking.open_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return set()
    return {r.data.tags[tracking.HASH_TAG] for r in tracking.finished_cell_runs(client, exp.experiment_id)
            if tracking.HASH_TAG in r.data.tags}


def plan_cells(suite: Any, cells: list[Cell], registry: Any, tracking_uri: Optional[str] = None,
               force: bool = False, cache_dir: Path = CACHE_DIR) -> list[PlannedCell]:
    done = set() if force else finished_hashes(tracking_uri or suite.tracking.uri, suite.suite)
    datasets: dict[str, Any] = {}
    out = []
    for cell in cells:
        key = cell.dataset.key
        if key not in datasets:
            try:
                datasets[key] = prepare_dataset(cell.dataset, cell.task, registry, cache_dir)
            except Exception as exc:  # the run would fail these cells; say why
                datasets[key] = exc
        ds = datasets[key]
        if isinstance(ds, Exception):
            out.append(PlannedCell(cell, "unavailable", cell_hash(cell, "unavailable", registry),
                                   f"dataset error: {type(ds).__name__}: {ds}"))
            continue
        h = cell_hash(cell, ds.split_id, registry)
        out.append(PlannedCell(cell, ds.split_id, h, "done" if h in done else "pending"))
    return out
