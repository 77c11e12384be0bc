"""bench results / harness.results: the board's numbers as a tidy table, in every format."""
from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

import harness
from harness.cli import app

cli = CliRunner()
RAW = {"suite": "restest",
       "datasets": [{"name": "synthetic", "label": "syn",
                     "params": {"n_users": 80, "n_items": 100, "n_interactions": 2400}}],
       "methods": [{"name": "pop"},
                   {"name": "bpr_mf", "params": {"dim": 16, "epochs": 3, "lr": 0.01,
                                                 "batch_size": 512}}],
       "seeds": [0, 1, 2], "metrics": ["ndcg@10", "recall@10"], "baseline": "pop",
       "tracking": {"uri": "sqlite:///mlflow.db"}}


@pytest.fixture(scope="module")
def ran(cli_suite_run):
    return cli_suite_run(RAW, ["run", "-q"], ["leaderboard", "--out", "lb"])


def test_csv_round_trips_through_pandas_with_the_boards_numbers(ran, monkeypatch):
    tmp, path = ran
    monkeypatch.chdir(tmp)
    res = cli.invoke(app, ["results", str(path), "--format", "csv"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(io.StringIO(res.stdout))
    assert list(frame.columns[:8]) == ["suite", "dataset", "method", "metric", "direction",
                                       "mean", "std", "n_seeds"]
    assert len(frame) == 2 * 2 and set(frame["n_seeds"]) == {3}
    md = (tmp / "lb" / "restest.md").read_text()
    for _, r in frame.iterrows():
        line = next(l for l in md.splitlines() if l.startswith(f"| {r['method']}"))
        col = 1 + ["ndcg@10", "recall@10"].index(r["metric"])
        assert f"{r['mean']:.4f} ± {r['std']:.4f}" in line.split("|")[1 + col]
    bpr = frame[(frame.method == "bpr_mf") & (frame.metric == "ndcg@10")].iloc[0]
    assert bpr["baseline"] == "pop" and bpr["unit"] == "seeds" and bpr["test"] == "seeds"
    pvals = re.findall(r"^\| bpr_mf \| pop \| 3 \| (\S+) \| (\S+) \|$", md, re.M)[0]
    assert f"{bpr['p_holm']:.2g}" == pvals[0]
    pop = frame[frame.method == "pop"]
    assert pop["p_value"].isna().all()  # the baseline is not tested against itself
    # same numbers as the API, bit for bit (the CSV keeps 17 significant digits)
    api = harness.results(path, tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    numeric = ["mean", "std", "n_seeds", "delta", "p_value", "p_holm"]
    pd.testing.assert_frame_equal(api[numeric], frame[numeric].astype(api[numeric].dtypes.to_dict()),
                                  check_exact=True)
    text = ["suite", "dataset", "method", "metric", "direction", "flags", "split_id"]
    assert api[text].fillna("").astype(str).equals(frame[text].fillna("").astype(str))


def test_per_seed_json_parquet_latex(ran, monkeypatch, tmp_path):
    tmp, path = ran
    monkeypatch.chdir(tmp)
    res = cli.invoke(app, ["results", str(path), "--per-seed", "--format", "json"])
    rows = json.loads(res.stdout)
    assert len(rows) == 2 * 3 * 2 and {r["seed"] for r in rows} == {"0", "1", "2"}
    board = harness.results(path)
    for (method, metric), group in pd.DataFrame(rows).groupby(["method", "metric"]):
        mean = board[(board.method == method) & (board.metric == metric)]["mean"].iloc[0]
        assert group["value"].mean() == pytest.approx(mean, abs=1e-12)
    out = tmp_path / "r.parquet"
    assert cli.invoke(app, ["results", str(path), "--format", "parquet", "--out", str(out)]).exit_code == 0
    assert pd.read_parquet(out).equals(board)
    no_file = cli.invoke(app, ["results", str(path), "--format", "parquet"])
    assert no_file.exit_code == 2 and "--out" in no_file.output
    latex = cli.invoke(app, ["results", str(path), "--format", "latex"]).stdout
    assert "\\begin{tabular}" in latex and "bpr\\_mf" in latex
    bad = cli.invoke(app, ["results", str(path), "--format", "xlsx"])
    assert bad.exit_code == 2
    missing = cli.invoke(app, ["results", str(path), "--tracking-uri",
                               f"sqlite:///{tmp_path}/empty.db"])
    assert missing.exit_code == 2 and "no experiment 'restest'" in missing.output
