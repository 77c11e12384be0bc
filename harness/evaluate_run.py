"""Bring your own run: score an external TREC run file under a suite's protocol.

The run is turned into a score matrix (listed items keep their run scores, every other
item is -inf) and handed to the harness's own full-ranking scorer, so masking of
train/valid items, tie-breaking, cutoffs and ranx metrics are exactly those of a cell.
A run file written by the harness therefore re-scores to the metrics of its cell.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
import torch

from .api import RANKING_TASKS, BenchError
from .registry import Registry
from .suite import Suite



def read_trec(path: Path) -> tuple[list[str], list[str], np.ndarray, set[str]]:
    """(query ids, doc ids, scores, tags) of a TREC run: ``qid Q0 docid rank score tag``."""
    from .scoring import trec_unfield
    from .userfiles import read_text

    users, items, scores, tags = [], [], [], set()
    # a folder, a binary or a non-UTF-8 file is one error line (harness.userfiles)
    for n, line in enumerate(read_text(path, "run file").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise BenchError(f"{path}:{n}: a TREC run line has 6 fields "
                             f"(qid Q0 docid rank score tag), got {len(parts)}: {line.strip()!r}")
        try:
            score = float(parts[4])
        except ValueError:
            raise BenchError(f"{path}:{n}: score '{parts[4]}' is not a number.") from None
        if not np.isfinite(score):
            raise BenchError(f"{path}:{n}: score must be finite, got {parts[4]}.")
        users.append(trec_unfield(parts[0]))
        items.append(trec_unfield(parts[2]))
        scores.append(score)
        tags.add(trec_unfield(parts[5]))
    if not users:
        raise BenchError(f"{path}: the run file is empty.")
    return users, items, np.asarray(scores, dtype=np.float64), tags


class RunModel:
    """A 'model' whose scores are the run's: listed items their score, all others -inf."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix

    def score(self, users: torch.Tensor) -> torch.Tensor:
        rows = self.matrix[users.cpu().numpy()]
        out = torch.full(rows.shape, -torch.inf, dtype=torch.float64)
        r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        out[torch.from_numpy(r), torch.from_numpy(rows.indices.astype(np.int64))] = \
            torch.from_numpy(rows.data)
        return out


def _index(tokens: Any) -> dict[str, int]:
    return {str(t): i for i, t in enumerate(tokens)}


def run_matrix(path: Path, dataset) -> tuple[sp.csr_matrix, list[str]]:
    users, items, scores, _ = read_trec(path)
    u_ix, i_ix = _index(dataset.data.user_tokens), _index(dataset.data.item_tokens)
    bad_u = sorted({u for u in users if u not in u_ix})
    bad_i = sorted({i for i in items if i not in i_ix})
    if bad_u or bad_i:
        raise BenchError(f"{path}: ids not in dataset '{dataset.name}': {len(bad_u)} user(s) "
                         f"{bad_u[:5]}, {len(bad_i)} item(s) {bad_i[:5]}. A run must use the "
                         "dataset's original ids (as harness run.trec files do).")
    r = np.fromiter((u_ix[u] for u in users), dtype=np.int64, count=len(users))
    c = np.fromiter((i_ix[i] for i in items), dtype=np.int64, count=len(items))
    key = r * dataset.n_items + c
    if len(np.unique(key)) != len(key):
        raise BenchError(f"{path}: an item is listed twice for the same user.")
    # Replace scores by per-user ranks (ties: smaller item id first, the harness's rule):
    # the order is kept exactly through the scorer's float32, and values stay > 0 so the
    # sparse matrix never drops one as an explicit zero.
    order = np.lexsort((c, -scores, r))
    r, c = r[order], c[order]
    starts = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
    counts = np.diff(np.r_[starts, len(r)])
    position = np.arange(len(r)) - np.repeat(starts, counts)
    ranked = (np.repeat(counts, counts) - position).astype(np.float64)
    m = sp.csr_matrix((ranked, (r, c)), shape=(dataset.n_users, dataset.n_items))
    m.sort_indices()
    notes = []
    excl = dataset.exclusion_matrix("test")
    hits = int(m.multiply(excl).nnz)
    if hits:
        notes.append(f"{hits} run entries are training/validation items of their user; the "
                     "protocol masks them, as it does for every cell.")
    return m, notes


def evaluate_run_file(run_file: Path, suite: Suite, dataset_key: str, registry: Registry, *,
                      label: Optional[str] = None, split_id: Optional[str] = None,
                      tracking_uri: Optional[str] = None, cache_dir: Path = Path(".bench_cache"),
                      log: bool = True) -> tuple[dict[str, float], dict[str, Any]]:
    """Score ``run_file`` on the test split of the suite's dataset ``dataset_key`` and log
    it to the suite's MLflow experiment as a finished cell (``bench.source=evaluate``)."""
    from .runner import prepare_dataset, protocol_id
    from .scoring import score_ranking

    run_file = Path(run_file)
    if not run_file.is_file():
        raise BenchError(f"{run_file}: no such run file.")
    entries = {d.key: d for d in suite.datasets}
    if dataset_key not in entries:
        raise BenchError(f"dataset '{dataset_key}' is not in suite '{suite.suite}' "
                         f"(datasets: {', '.join(entries)}).")
    entry = entries[dataset_key]
    task = entry.task or registry.catalogue.dataset(entry.name).default_task
    if task not in RANKING_TASKS:
        raise BenchError(f"bench evaluate scores ranking runs; '{dataset_key}' is a '{task}' task.")
    dataset = prepare_dataset(entry, task, registry, cache_dir)
    if split_id and split_id != dataset.split_id:
        raise BenchError(f"the run was made on split '{split_id}' but suite '{suite.suite}' "
                         f"splits '{dataset_key}' as '{dataset.split_id}': not the same protocol.")
    _, _, _, tags = read_trec(run_file)
    tag = sorted(tags)[0] if len(tags) == 1 else run_file.stem
    if label is not None and (not label.strip() or any(c.isspace() or not c.isprintable()
                                                        for c in label)):
        raise BenchError(f"--label {label!r}: a label is one token without whitespace (it names "
                         "a leaderboard row and the tag column of run files).")
    name = label or f"{tag} (external)"
    if name in {m.key for m in suite.methods}:
        raise BenchError(f"label '{name}' is a method of suite '{suite.suite}'; pass a distinct "
                         "--label so the external run is not mixed into its seeds.")
    matrix, notes = run_matrix(run_file, dataset)
    metrics = list(suite.metrics)
    result = score_ranking(RunModel(matrix), dataset, "test", metrics, registry.catalogue.metrics)
    digest = hashlib.sha256(run_file.read_bytes()).hexdigest()
    info = {"label": name, "split_id": dataset.split_id, "notes": notes, "sha256": digest,
            "per_user": result.per_user}
    if log:
        _log(suite, dataset, task, name, run_file, digest, result, tracking_uri)
    return dict(result.metrics), info


def _log(suite, dataset, task, name, run_file, digest, result, tracking_uri) -> None:
    from .runner import protocol_id
    from .tracking import HASH_TAG, STATUS_TAG, Tracker

    proto = protocol_id(SimpleNamespace(task=task, metrics=tuple(suite.metrics),
                                         valid_metric=suite.valid_metric))
    cell_hash = hashlib.sha256(json.dumps([digest, dataset.name, dataset.split_id, proto, name])
                               .encode()).hexdigest()[:16]
    tracker = Tracker(tracking_uri or suite.tracking.uri, suite.suite)
    resolved = {"source": "evaluate", "run_file": str(run_file), "sha256": digest,
                "dataset": dataset.name, "metrics": list(suite.metrics)}
    tags = {HASH_TAG: cell_hash, "bench.method": name, "bench.method_name": "external",
            "bench.dataset": dataset.name, "bench.seed": "external",
            "bench.split_id": dataset.split_id, "bench.task": task, "bench.protocol_id": proto,
            "bench.source": "evaluate", "bench.run_sha256": digest}
    with tracker.cell_run(f"{name} | {dataset.name} | external", resolved, tags) as log:
        log.metrics(result.metrics)
        log.json(result.per_user, "per_user_metrics.json")
        log.file(run_file)
        log.tags({STATUS_TAG: "finished"})
