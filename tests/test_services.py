"""bench against real servers on loopback: an `mlflow server` (started here) and
PostgreSQL (``BENCH_TEST_POSTGRES_URI``, which `.ci/run` starts and always sets)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import yaml
from typer.testing import CliRunner

from harness.testing import tiny_suite
from harness.cli import app

cli = CliRunner()
POSTGRES = os.environ.get("BENCH_TEST_POSTGRES_URI")
needs_postgres = pytest.mark.skipif(not POSTGRES, reason="BENCH_TEST_POSTGRES_URI is not set "
                                    "(.ci/run starts a PostgreSQL server and sets it)")


@pytest.fixture
def fresh_database():
    """A new, empty PostgreSQL database on the CI server (MLflow and Optuna each keep
    their own alembic schema, so they cannot share one database), dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    url = make_url(POSTGRES)
    with psycopg.connect(POSTGRES, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(POSTGRES, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` with a SQLite backend and a served artifact root, on loopback."""
    import requests

    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{folder / 'server.db'}", "--artifacts-destination",
                             str(folder / "artifacts"), "--host", "127.0.0.1", "--port",
                             str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while True:
        try:
            if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_suite_runs_through_an_mlflow_server(mlflow_server, write_suite):
    import mlflow

    path = write_suite(tiny_suite(seeds=[0]))
    first = cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", mlflow_server])
    assert first.exit_code == 0, first.output
    client = mlflow.MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("tiny")
    cells = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'cell'")
    assert len(cells) == 2 and {r.data.tags["bench.status"] for r in cells} == {"finished"}
    assert all(r.info.status == "FINISHED" for r in cells)
    bpr = next(r for r in cells if r.data.tags["bench.method"] == "bpr_mf")
    assert "ndcg_at_10" in bpr.data.metrics
    arts = {a.path for a in client.list_artifacts(bpr.info.run_id)}
    assert {"resolved_config.json", "per_user_metrics.json", "run.trec"} <= arts
    # resume reads the server's runs
    again = cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", mlflow_server])
    assert "0 cell(s) ran, 2 skipped" in again.output, again.output


@needs_postgres
def test_suite_runs_into_a_postgresql_store(write_suite, fresh_database):
    import mlflow

    name = f"pg-{uuid.uuid4().hex[:8]}"
    path = write_suite(tiny_suite(suite=name, methods=[{"name": "pop"}], seeds=[0, 1]))
    result = cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", fresh_database])
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(fresh_database)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                              "tags.`bench.kind` = 'cell'")
    assert sorted(r.data.tags["bench.seed"] for r in runs) == ["0", "1"]
    again = cli.invoke(app, ["run", str(path), "-q", "--tracking-uri", fresh_database])
    assert "0 cell(s) ran, 2 skipped" in again.output


TUNE_SUITE = {
    "datasets": [{"name": "synthetic", "params": {"n_users": 60, "n_items": 80,
                                                  "n_interactions": 1200, "seed": 1}}],
    "methods": [{"name": "bpr_mf", "params": {"dim": 8, "epochs": 2, "batch_size": 256},
                 "search": {"lr": {"loguniform": [0.001, 0.05]}}}],
    "seeds": [0], "metrics": ["ndcg@10"],
    "tuning": {"trials": 6, "sampler": "random", "pruner": "none"},
}


@needs_postgres
def test_two_tuning_workers_share_one_postgresql_study(workdir, fresh_database):
    import optuna

    storage = fresh_database
    name = f"tunepg-{uuid.uuid4().hex[:8]}"
    suite = workdir / "tune.yaml"
    suite.write_text(yaml.safe_dump({"suite": name, **TUNE_SUITE}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "harness.cli", "tune", str(suite), "-q",
                               "--storage", storage, "--tracking-uri",
                               f"sqlite:///{workdir / f'worker{i}.db'}"], cwd=workdir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    studies = [s for s in optuna.study.get_all_study_summaries(storage)
               if s.study_name.startswith(name + ".")]
    assert len(studies) == 1  # one study, shared
    trials = optuna.load_study(study_name=studies[0].study_name, storage=storage).trials
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    # the budget, and at most one trial in flight per worker beyond it
    assert 6 <= len(counted) <= 6 + 2, [t.state.name for t in trials]
    assert not [t for t in trials if t.state.name == "RUNNING"]
