"""Cell claims in the tracking store, so no finished or live cell runs twice.

A claim is the cell's own MLflow run: RUNNING, tagged with the cell hash, the holder
(``host:pid:start``) and a heartbeat the holder refreshes. Before running a cell a driver
looks at the cell's runs:

* a finished run: the cell is done (skipped; ``--force`` ignores this);
* a RUNNING run whose holder is alive (heartbeat fresher than ``stale_after``, or a
  holder process on this host that still exists): another driver is on it ("busy"); the
  driver comes back to it after its other cells;
* a RUNNING run whose holder is gone: the orphan is marked KILLED and the cell claimed.

Claiming is "write, then check": the driver creates its RUNNING run, then reads the
cell's runs again; among live claims the oldest (start time, then run id) wins and the
others delete theirs. On a SQLite store the read-and-create happens under a file lock
beside the database, so it is exact; on a server store (PostgreSQL, MySQL, an ``mlflow
server``) a short settle delay before the second read lets a concurrent claim become
visible first.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from .tracking import STATUS_TAG, Tracker, lock_or_null

SETTLE_S = 1.0


@dataclass
class Claim:
    state: str                  # claimed | finished | busy
    run_id: str = ""            # the claimed run, or the finished run found
    metrics: dict[str, float] = field(default_factory=dict)
    holder: str = ""


def _status(run: Any) -> str:
    return run.data.tags.get(STATUS_TAG, "")


def claim_cell(tracker: Tracker, cell_hash: str, name: str, tags: dict[str, str],
               parent_id: Optional[str], stale_after: float, force: bool = False,
               settle: float = SETTLE_S) -> Claim:
    exact = tracker.uri.startswith("sqlite:")
    with lock_or_null(tracker.uri):
        seen = _inspect(tracker, cell_hash, stale_after, force, reap=True)
        if seen is not None:
            return seen
        run_id = tracker.create_cell_run(name, tags, parent_id)
    if not exact:
        time.sleep(settle)
        runs = tracker.cell_runs(cell_hash)
        if not force:
            done = [r for r in runs if _status(r) == "finished"]
            if done:
                tracker.delete_run(run_id)
                return Claim("finished", run_id=done[-1].info.run_id,
                             metrics=dict(done[-1].data.metrics))
        live = [r for r in runs if r.info.status == "RUNNING"
                and (r.info.run_id == run_id or tracker.is_live(r, stale_after))]
        first = min(live, key=lambda r: (r.info.start_time, r.info.run_id))
        if first.info.run_id != run_id:
            tracker.delete_run(run_id)
            return Claim("busy", holder=first.data.tags.get("bench.owner", "?"))
    return Claim("claimed", run_id=run_id)


def _inspect(tracker: Tracker, cell_hash: str, stale_after: float, force: bool,
             reap: bool) -> Optional[Claim]:
    """finished / busy from the cell's runs, or None when the cell is free to claim
    (orphaned RUNNING runs are marked KILLED on the way)."""
    runs = tracker.cell_runs(cell_hash)
    if not force:
        done = [r for r in runs if _status(r) == "finished"]
        if done:
            return Claim("finished", run_id=done[-1].info.run_id,
                         metrics=dict(done[-1].data.metrics))
    for r in runs:
        if r.info.status != "RUNNING":
            continue
        if tracker.is_live(r, stale_after):
            return Claim("busy", holder=r.data.tags.get("bench.owner", "?"))
        if reap:
            tracker.mark_killed(r, f"orphaned claim: holder {r.data.tags.get('bench.owner', '?')} "
                                   f"is gone (taken over by {tracker.owner})")
    return None


class Heartbeat:
    """A daemon thread that refreshes the heartbeat of every run this driver holds."""

    def __init__(self, tracker: Tracker, every: float) -> None:
        self.tracker, self.every = tracker, max(0.5, every)
        self.run_ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def add(self, run_id: str) -> None:
        with self._lock:
            self.run_ids.add(run_id)

    def discard(self, run_id: str) -> None:
        with self._lock:
            self.run_ids.discard(run_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                ids = list(self.run_ids)
            self.tracker.beat(ids)
