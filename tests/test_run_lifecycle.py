"""A run's life in the tracking store: signals, a SIGKILLed driver, concurrent drivers,
orphaned claims (issue 14's claims, issue 22 item 7). Real ``bench`` processes."""
from __future__ import annotations

import signal
import time

import pytest

from lifecycle_fixtures import (all_runs, cells_by_hash, marks, start_bench, wait_for_marks,
                                write_sleepy)


def _statuses(runs) -> set[tuple[str, str, str]]:
    return {(r.data.tags.get("bench.kind"), r.info.status, r.data.tags.get("bench.status"))
            for r in runs}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_marks_cell_and_parent_killed_and_exits(workdir, sig, code):
    suite = write_sleepy(workdir, seeds=[0, 1], seconds=60)
    proc = start_bench(workdir, "run", str(suite), "-q")
    wait_for_marks(workdir, 1, proc)
    t0 = time.time()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert time.time() - t0 < 30
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"interrupted by {sig.name}" in lines[0], err
    assert "Traceback" not in err
    runs = all_runs(f"sqlite:///{workdir / 'mlflow.db'}", "life")
    # the running cell and the invocation: KILLED in MLflow, `killed` in bench.status; the
    # second cell never started
    assert _statuses(runs) == {("cell", "KILLED", "killed"), ("invocation", "KILLED", "killed")}
    assert len(runs) == 2


def test_sigint_with_jobs_2_kills_the_driver_cell_and_the_worker_cell_at_once(workdir):
    """--jobs 2 runs one cell on a thread of the driver: an interrupt must not wait for it."""
    suite = write_sleepy(workdir, seeds=[0, 1, 2], seconds=60)
    proc = start_bench(workdir, "run", str(suite), "-q", "--jobs", "2")
    wait_for_marks(workdir, 2, proc)  # both slots are in a cell
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.time() - t0 < 30
    runs = all_runs(f"sqlite:///{workdir / 'mlflow.db'}", "life")
    assert _statuses(runs) == {("cell", "KILLED", "killed"), ("invocation", "KILLED", "killed")}
    assert len(runs) == 3  # two cells and the invocation; the third cell never started


def test_sigkill_then_rerun_loses_and_duplicates_nothing(workdir):
    suite = write_sleepy(workdir, seeds=list(range(6)), seconds=1.0)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    first = start_bench(workdir, "run", str(suite), "-q")
    wait_for_marks(workdir, 3, first)  # two cells finished, the third is running
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    left = all_runs(uri, "life")
    assert any(r.info.status == "RUNNING" for r in left)  # what SIGKILL leaves behind

    second = start_bench(workdir, "run", str(suite), "-q")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    runs = all_runs(uri, "life")
    by_hash = cells_by_hash(runs)
    assert len(by_hash) == 6  # 0 lost
    for h, rs in by_hash.items():  # 0 duplicated
        assert sum(r.data.tags["bench.status"] == "finished" for r in rs) == 1, h
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert killed and all(r.data.tags["bench.status"] == "killed" for r in killed)
    assert {r.data.tags["bench.kind"] for r in killed} == {"cell", "invocation"}
    # the killed driver's finished cells were kept: the rerun ran only the rest
    first_id = next(r.info.run_id for r in killed if r.data.tags["bench.kind"] == "invocation")
    kept = sum(r.data.tags.get("mlflow.parentRunId") == first_id for rs in by_hash.values()
               for r in rs if r.data.tags["bench.status"] == "finished")
    assert kept >= 2
    assert int(err.split(" cell(s) ran")[0].split()[-1]) == 6 - kept


def test_two_concurrent_drivers_run_each_cell_once(workdir):
    suite = write_sleepy(workdir, seeds=list(range(6)), seconds=1.0)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"  # a new store: both drivers create it at once
    procs = [start_bench(workdir, "run", str(suite), "-q") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(marks(workdir)) == 6  # six trainings in all
    runs = all_runs(uri, "life")
    by_hash = cells_by_hash(runs)
    assert len(by_hash) == 6
    assert all(len(rs) == 1 and rs[0].data.tags["bench.status"] == "finished"
               for rs in by_hash.values())
    assert not [r for r in runs if r.info.status == "RUNNING"]
    rows = [sorted(line for line in out.splitlines() if "sleepy" in line) for out, _ in outs]
    assert rows[0] == rows[1] and rows[0]  # both print the whole grid's table
    ran = sorted(int(err.split(" cell(s) ran")[0].split()[-1]) for _, err in outs)
    assert sum(ran) == 6


def test_stale_claim_is_taken_over_and_a_live_one_is_not(workdir):
    from harness.cell_claims import claim_cell
    from harness.tracking import HEARTBEAT_TAG, OWNER_TAG, Tracker

    tracker = Tracker(f"sqlite:///{workdir / 'm.db'}", "claims")
    tags = {"bench.cell_hash": "abc"}
    # a claim held on another machine: only its heartbeat tells whether it is alive
    other = tracker.create_cell_run("x", tags)
    tracker.client.set_tag(other, OWNER_TAG, "another-host:4242:99")
    assert claim_cell(tracker, "abc", "x", tags, None, stale_after=60).state == "busy"
    tracker.client.set_tag(other, HEARTBEAT_TAG, f"{time.time() - 120:.0f}")
    got = claim_cell(tracker, "abc", "x", tags, None, stale_after=60)
    assert got.state == "claimed"
    orphan = tracker.client.get_run(other)
    assert orphan.info.status == "KILLED" and orphan.data.tags["bench.status"] == "killed"
    # a claim whose holder is a dead process on this host is taken over at once
    tracker.client.set_tag(got.run_id, OWNER_TAG, tracker.owner.rsplit(":", 2)[0] + ":999999:1")
    again = claim_cell(tracker, "abc", "x", tags, None, stale_after=3600)
    assert again.state == "claimed"
    assert tracker.client.get_run(got.run_id).info.status == "KILLED"
    tracker.end_run(again.run_id, "finished")
    assert claim_cell(tracker, "abc", "x", tags, None, stale_after=60).state == "finished"
