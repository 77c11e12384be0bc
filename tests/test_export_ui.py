"""bench data export-split (the exact split, scored back by bench evaluate to the cell's
numbers) and bench ui (one worker, the suite's runs page)."""
from __future__ import annotations

import csv
import json
from collections import Counter

import mlflow
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evaluate_run import evaluate_run_file
from harness.registry import Registry
from harness.suite import load_suite

cli = CliRunner()
RAW = {"suite": "exptest",
       "datasets": [{"name": "synthetic", "label": "syn",
                     "params": {"n_users": 70, "n_items": 90, "n_interactions": 1800, "seed": 3}}],
       "methods": [{"name": "pop"},
                   {"name": "bpr_mf", "params": {"dim": 8, "epochs": 2, "batch_size": 256}}],
       "seeds": [0], "metrics": ["ndcg@10", "recall@10", "mrr@10"],
       "tracking": {"uri": "sqlite:///mlflow.db"}}


@pytest.fixture(scope="module")
def ran(cli_suite_run):
    tmp, path = cli_suite_run(RAW, ["run", "-q"])
    client = mlflow.MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name("exptest")
    cells = {r.data.tags["bench.method"]: r for r in
             client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'cell'")}
    return tmp, path, client, exp, cells


def _logged(run):
    return {k.replace("_at_", "@"): v for k, v in run.data.metrics.items()}


def test_exported_split_scored_by_evaluate_reproduces_the_cell(ran, monkeypatch):
    """An 'external library' (plain Python over the exported CSVs) recomputes popularity and
    writes a TREC run; bench evaluate scores it to the pop cell's metrics exactly."""
    tmp, path, client, exp, cells = ran
    monkeypatch.chdir(tmp)
    res = cli.invoke(app, ["data", "export-split", str(path), "--dataset", "syn", "--format",
                           "csv", "--out", "out"])
    assert res.exit_code == 0, res.output
    parts = {p: list(csv.DictReader(open(tmp / "out" / f"syn.{p}.csv")))
             for p in ("train", "valid", "test")}
    count = Counter(r["item"] for r in parts["train"])
    items = sorted({r["item"] for rows in parts.values() for r in rows})
    seen: dict[str, set] = {}
    for p in ("train", "valid"):
        for r in parts[p]:
            seen.setdefault(r["user"], set()).add(r["item"])
    run_file = tmp / "external.trec"
    with open(run_file, "w") as f:
        for user in sorted({r["user"] for r in parts["test"]}):
            cand = [i for i in items if i not in seen.get(user, set())]
            for rank, item in enumerate(sorted(cand, key=lambda i: -count[i]), 1):
                f.write(f"{user} Q0 {item} {rank} {count[item]} mypop\n")
    suite, _ = load_suite(path, Registry())
    metrics, info = evaluate_run_file(run_file, suite, "syn", Registry(), log=False,
                                      cache_dir=tmp / ".bench_cache")
    logged = _logged(cells["pop"])
    for m in suite.metrics:
        assert metrics[m] == logged[m], m  # exactly, not approximately
    assert info["split_id"] == cells["pop"].data.tags["bench.split_id"]


def test_exported_qrels_give_the_cells_numbers_in_ranx(ran, monkeypatch, tmp_path):
    tmp, path, client, exp, cells = ran
    monkeypatch.chdir(tmp)
    res = cli.invoke(app, ["data", "export-split", str(path), "--dataset", "syn", "--format",
                           "trec-qrels", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    from ranx import Qrels, Run, evaluate

    run = cells["bpr_mf"]
    trec = client.download_artifacts(run.info.run_id, "run.trec", str(tmp_path))
    qrels = Qrels.from_file(str(tmp_path / "syn.test.qrels"), kind="trec")
    scores = evaluate(qrels, Run.from_file(trec, kind="trec"), ["ndcg@10", "recall@10"])
    logged = _logged(run)
    assert scores["ndcg@10"] == pytest.approx(logged["ndcg@10"], abs=1e-12)
    assert scores["recall@10"] == pytest.approx(logged["recall@10"], abs=1e-12)


def test_recbole_export_and_bad_inputs(ran, monkeypatch, tmp_path):
    tmp, path, *_ = ran
    monkeypatch.chdir(tmp)
    res = cli.invoke(app, ["data", "export-split", str(path), "--dataset", "syn", "--format",
                           "recbole", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    sizes = {p: len((tmp_path / "syn" / f"syn.{p}.inter").read_text().splitlines()) - 1
             for p in ("train", "valid", "test")}
    csv_sizes = {p: len((tmp / "out" / f"syn.{p}.csv").read_text().splitlines()) - 1
                 for p in ("train", "valid", "test")} if (tmp / "out").exists() else sizes
    assert sizes == csv_sizes and sum(sizes.values()) > 1000
    bad = cli.invoke(app, ["data", "export-split", str(path), "--dataset", "sin"])
    assert bad.exit_code == 2 and "Did you mean: syn" in bad.output
    bad = cli.invoke(app, ["data", "export-split", str(path), "--dataset", "syn", "--format", "x"])
    assert bad.exit_code == 2


def test_ui_one_worker_and_the_suites_runs_page(ran, monkeypatch):
    tmp, path, client, exp, _ = ran
    monkeypatch.chdir(tmp)
    calls = []
    monkeypatch.setattr("harness.cli.subprocess.call", lambda cmd: calls.append(cmd) or 0)
    res = cli.invoke(app, ["ui", str(path), "--port", "5999"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert f"http://127.0.0.1:5999/#/experiments/{exp.experiment_id}/runs" in res.output
    assert "Model training" in res.output
    view = f"http://127.0.0.1:5999/#/experiments/{exp.experiment_id}/runs?viewStateShareKey=bench-cells"
    assert view in res.output
    state = json.loads(client.get_experiment(exp.experiment_id).tags["mlflow.sharedViewState.bench-cells"])
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "bench.method"}]
    assert "metrics.`ndcg_at_10`" in state["selectedColumns"]
    cmd = calls[0]
    assert cmd[cmd.index("--workers") + 1] == "1"
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{tmp}/mlflow.db"
    # no suite: every experiment's runs page; a store that does not exist is not created
    res = cli.invoke(app, ["ui", "--tracking-uri", f"sqlite:///{tmp}/none.db"])
    assert res.exit_code == 0 and not (tmp / "none.db").exists()
