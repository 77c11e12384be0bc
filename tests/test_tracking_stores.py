"""Tracking stores (issue 22 items 3, 5, 8): bad stores fail fast with exit 2 and one
paragraph; two first runs on a new SQLite store both work; resume reads every run."""
from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from typer.testing import CliRunner

from harness.testing import tiny_suite
from harness.cli import app

cli = CliRunner()


def _pop_suite(write_suite, **kw):
    return write_suite(tiny_suite(methods=[{"name": "pop"}], seeds=[0], **kw))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refused(result, *needles: str) -> str:
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out and "error:" in out
    for needle in needles:
        assert needle in out, out
    return out


def test_refused_http_store_fails_fast(write_suite):
    path = _pop_suite(write_suite)
    uri = f"http://127.0.0.1:{_free_port()}"
    t0 = time.time()
    result = cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", uri])
    assert time.time() - t0 < 10
    _refused(result, uri, "mlflow server")


def test_http_server_that_is_not_mlflow_is_refused(write_suite):
    path = _pop_suite(write_suite)
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        _refused(cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", uri]),
                 "not an MLflow tracking server")
    finally:
        server.shutdown()


@pytest.mark.parametrize("uri, needle", [
    ("ftp://example/x", "unknown scheme 'ftp'"),
    ("postgres://u@127.0.0.1/db", "postgresql://"),
    ("mysql://u:secret@127.0.0.1/db", "pip install 'mysqlclient'"),
    ("postgresql+pg8000://u@127.0.0.1/db", "pip install 'pg8000'"),
])
def test_wrong_scheme_or_missing_driver(write_suite, uri, needle):
    out = _refused(cli.invoke(app, ["run", str(_pop_suite(write_suite)), "-q",
                                    "--tracking-uri", uri]), needle)
    assert "secret" not in out  # passwords are never printed


def test_unreachable_database_fails_fast(write_suite):
    pytest.importorskip("psycopg", reason="the postgres extra is not installed (make test installs it)")
    uri = f"postgresql://bench@127.0.0.1:{_free_port()}/bench"
    t0 = time.time()
    _refused(cli.invoke(app, ["run", str(_pop_suite(write_suite)), "-q", "--tracking-uri", uri]),
             "cannot connect")
    assert time.time() - t0 < 10


def test_non_database_file_and_folder_are_refused(workdir, write_suite):
    path = _pop_suite(write_suite)
    (workdir / "notes.db").write_text("not a database\n" * 10)
    _refused(cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", "sqlite:///notes.db"]),
             "not a SQLite database")
    assert (workdir / "notes.db").read_text().startswith("not a database")  # untouched
    (workdir / "folder.db").mkdir()
    _refused(cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", "sqlite:///folder.db"]),
             "is a folder")


def test_read_only_store_fails_fast(workdir, write_suite):
    path = _pop_suite(write_suite)
    assert cli.invoke(app, ["run", str(path), "-q"]).exit_code == 0
    db = workdir / "mlflow.db"
    # root ignores file modes; the immutable attribute binds root too
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(db)]).returncode:
            pytest.fail("cannot make the store read-only here (chattr +i failed)")
    else:
        db.chmod(0o444)
    try:
        t0 = time.time()
        result = cli.invoke(app, ["run", str(path), "-q", "--force"])
        assert time.time() - t0 < 10
        _refused(result, "read-only", str(db))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(db)])
        db.chmod(0o644)


OPEN_STORE = """
import os, sys, time
from pathlib import Path
import mlflow.store.tracking.sqlalchemy_store  # the slow imports, before the barrier
from harness import tracking
if len(sys.argv) > 3:  # only to show the race without the lock
    import contextlib
    tracking.store_lock = lambda *a, **k: contextlib.nullcontext()
barrier = Path(sys.argv[2])
(barrier / str(os.getpid())).touch()
while len(list(barrier.iterdir())) < 2:
    time.sleep(0.001)
tracking.Tracker(sys.argv[1], "race")
print("ok")
"""


def test_two_first_runs_on_a_new_sqlite_store_both_work(workdir):
    """MLflow builds a new store's schema without a lock; two processes opening it in the
    same millisecond used to crash one of them (and once broke the store for good)."""
    script = workdir / "open_store.py"
    script.write_text(OPEN_STORE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for round_ in range(2):
        uri = f"sqlite:///{workdir / f'new-{round_}.db'}"
        barrier = workdir / f"barrier-{round_}"
        barrier.mkdir()
        procs = [subprocess.Popen([sys.executable, str(script), uri, str(barrier)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        from harness.tracking import Tracker

        assert Tracker(uri, "race").experiment_id  # the store is usable afterwards


def _insert_finished_runs(db, experiment_id: str, n: int, start_ms: int) -> None:
    import sqlite3

    con = sqlite3.connect(str(db))
    ids = [uuid.uuid4().hex for _ in range(n)]
    con.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
        "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
        "experiment_id) VALUES (?, 'old', 'LOCAL', '', '', 'u', 'FINISHED', ?, ?, '', 'active', "
        "'', ?)", [(rid, start_ms + i, start_ms + i, int(experiment_id)) for i, rid in enumerate(ids)])
    con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                    [(k, v, rid) for rid in ids for k, v in (
                        ("bench.kind", "cell"), ("bench.status", "finished"),
                        ("bench.cell_hash", rid[:16]))])
    con.commit()
    con.close()


def test_resume_sees_a_finished_cell_behind_50000_older_runs(workdir, write_suite):
    """MLflow returns at most 50,000 runs per search; resume used to read only the oldest
    50,000 finished runs, so newer finished cells were silently run again."""
    from harness.tracking import Tracker

    path = _pop_suite(write_suite)
    assert "1 cell(s) ran" in cli.invoke(app, ["run", str(path), "-q"]).output
    tracker = Tracker("sqlite:///mlflow.db", "tiny")
    newest = min(r.info.start_time for r in tracker.runs())
    _insert_finished_runs(workdir / "mlflow.db", tracker.experiment_id, 50_000,
                          newest - 10_000_000)
    again = cli.invoke(app, ["run", str(path), "-q"])
    assert again.exit_code == 0 and "0 cell(s) ran, 1 skipped" in again.output, again.output


def test_run_reader_pages_through_every_run(workdir):
    from harness.tracking import Tracker, iter_runs

    tracker = Tracker("sqlite:///mlflow.db", "paging")
    _insert_finished_runs(workdir / "mlflow.db", tracker.experiment_id, 25, 1_000)
    got = list(iter_runs(tracker.client, [tracker.experiment_id],
                         "tags.`bench.status` = 'finished'", page_size=7))
    assert len(got) == 25 and len({r.info.run_id for r in got}) == 25
    assert len(tracker.finished_cells()) == 25


def _cell_log_on_new_store(tmp_path):
    import mlflow

    from harness.tracking import cell_log

    uri = f"sqlite:///{tmp_path / 'race.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("race")
    runs = [client.create_run(exp).info.run_id for _ in range(2)]
    return client, [cell_log(uri, r) for r in runs], runs


def test_a_cell_that_loses_the_dataset_insert_race_still_logs_its_input(tmp_path):
    """Two workers logging the first cells of one split at once: MLflow's check-then-insert
    of the shared dataset row makes the later insert fail with a unique-constraint error.
    That cell must link the row on a retry instead of failing (seen with --jobs 2)."""
    from mlflow.exceptions import MlflowException

    client, (first, second), runs = _cell_log_on_new_store(tmp_path)
    real = second.client.log_inputs
    calls = []

    def lose_the_race_once(run_id, datasets=None, **kw):
        calls.append(run_id)
        if len(calls) == 1:  # the other worker inserts the row between our check and insert
            first.input("ml-100k", "abc123", task="topk")
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: "
                                  "datasets.experiment_id, datasets.name, datasets.digest")
        return real(run_id, datasets=datasets, **kw)

    second.client.log_inputs = lose_the_race_once
    second.input("ml-100k", "abc123", task="topk")
    assert len(calls) == 2
    for run_id in runs:
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert [(d.dataset.name, d.dataset.digest) for d in inputs] == [("ml-100k", "abc123")]


def test_other_input_errors_are_not_retried(tmp_path):
    from mlflow.exceptions import MlflowException

    _, (_, log), _ = _cell_log_on_new_store(tmp_path)
    calls = []

    def broken(run_id, datasets=None, **kw):
        calls.append(run_id)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: run not found")

    log.client.log_inputs = broken
    with pytest.raises(MlflowException, match="not found"):
        log.input("ml-100k", "abc123")
    assert len(calls) == 1
