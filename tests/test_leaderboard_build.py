"""bench leaderboard and bench evaluate on a tiny real store (synthetic data, 2 seeds)."""
from __future__ import annotations

import base64
import copy
import importlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.api import BenchError
from harness.evaluate_run import evaluate_run_file
from harness.leaderboard import build_leaderboard
from harness.registry import Registry
from harness.runner import run_suite
from harness.suite import validate_suite
from harness.tracking import Tracker

RAW = {"suite": "lbtest",
       "datasets": [{"name": "synthetic", "label": "syn",
                     "params": {"n_users": 80, "n_items": 100, "n_interactions": 2400}}],
       "methods": [{"name": "pop"},
                   {"name": "bpr_mf", "params": {"dim": 16, "epochs": 4, "lr": 0.01,
                                                 "batch_size": 512}}],
       "seeds": [0, 1], "metrics": ["ndcg@10", "recall@10"], "baseline": "pop"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lb")
    reg = Registry(autoload=False)
    reg.register(importlib.import_module("plugins.baselines"), name="baselines")
    uri = f"sqlite:///{tmp}/mlflow.db"
    suite, cells = validate_suite(copy.deepcopy(RAW), reg)
    results = run_suite(suite, cells, reg, tracking_uri=uri, cache_dir=tmp)
    assert all(r.status == "finished" for r in results)
    return reg, suite, uri, tmp, results


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.titles, self.imgs, self.rows = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "td" and a.get("title"):
            self.titles.append(a["title"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "tr":
            self.rows += 1


def test_leaderboard_writes_md_html_png(store):
    reg, suite, uri, tmp, results = store
    out = tmp / "boards"
    paths = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=out,
                              command="bench leaderboard lbtest.yaml")
    assert [p.name for p in paths] == ["lbtest.md", "lbtest.html", "lbtest.png"]
    md = paths[0].read_text()
    assert md.splitlines()[0] == "`bench leaderboard lbtest.yaml`"
    means = {}
    for r in results:
        means.setdefault(r.cell.method.key, []).append(r.metrics["ndcg@10"])
    for method, vals in means.items():  # the table shows mean ± std of the runner's numbers
        assert f"{sum(vals) / 2:.4f} ± " in md
    row = next(line for line in md.splitlines() if line.startswith("| bpr_mf"))
    best = max(means, key=lambda m: sum(means[m]))
    assert ("**" in row.split("|")[2]) == (best == "bpr_mf")
    assert "| pop (baseline) |" in md and "untuned" in md
    split_id = results[0].cell_hash and re.search(r"split id `(\w+)`", md).group(1)
    assert len(split_id) == 12
    page = _Html()
    page.feed(paths[1].read_text())
    assert "table" in page.tags and page.rows == 3 + 2  # header + 2 methods; p-values: header + 1
    assert any(t.startswith("p = ") and "Holm" in t for t in page.titles)
    png = base64.b64decode(page.imgs[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == paths[2].read_bytes()


def test_leaderboard_against_another_baseline_writes_its_own_files(store):
    reg, suite, uri, tmp, results = store
    out = tmp / "boards-vs"
    paths = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=out, baseline="bpr_mf")
    assert [p.name for p in paths] == ["lbtest-vs-bpr_mf.md", "lbtest-vs-bpr_mf.html",
                                       "lbtest-vs-bpr_mf.png"]
    md = paths[0].read_text()
    assert "| bpr_mf (baseline) \\[still improving in 2/2 runs\\] |" in md  # 4 epochs, patience 5
    assert "| pop (baseline) |" not in md
    assert "| pop | bpr_mf | 2 |" in md and "than the baseline 'bpr_mf'" in md
    with pytest.raises(BenchError, match="Did you mean: bpr_mf"):
        build_leaderboard(suite, reg, tracking_uri=uri, out_dir=out, baseline="bpr_m")


def test_leaderboard_refuses_mixed_split_ids(store, tmp_path):
    reg, suite, uri, tmp, _ = store
    raw = copy.deepcopy(RAW)
    raw["suite"] = "lbmixed"
    s1, c1 = validate_suite(raw, reg)
    run_suite(s1, [c for c in c1 if c.method.key == "pop"], reg, tracking_uri=uri, cache_dir=tmp)
    raw["datasets"][0]["split"] = {"seed": 7}  # another split of the same dataset key
    s2, c2 = validate_suite(raw, reg)
    run_suite(s2, [c for c in c2 if c.method.key == "pop" and c.seed == 0], reg,
              tracking_uri=uri, cache_dir=tmp)
    # pop seed 0 now sits on the new split, pop seed 1 on the old one
    with pytest.raises(BenchError, match="different split ids"):
        build_leaderboard(s2, reg, tracking_uri=uri, out_dir=tmp_path)
    tracker = Tracker(uri, "lbmixed")
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`bench.seed` = '1'")
    keep = runs[0].data.tags["bench.split_id"]
    paths = build_leaderboard(s2, reg, tracking_uri=uri, out_dir=tmp_path, split_ids=[keep])
    assert f"split id `{keep}`" in paths[0].read_text()


def test_latest_run_per_cell_wins_after_force(store, tmp_path):
    reg, suite, uri, tmp, _ = store
    raw = copy.deepcopy(RAW)
    raw["suite"] = "lbforce"
    raw["methods"] = [{"name": "pop"}]
    s, cells = validate_suite(raw, reg)
    run_suite(s, cells, reg, tracking_uri=uri, cache_dir=tmp)
    run_suite(s, cells, reg, tracking_uri=uri, cache_dir=tmp, force=True)
    md = build_leaderboard(s, reg, tracking_uri=uri, out_dir=tmp_path)[0].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    row = next(line for line in md.splitlines() if line.startswith("| pop"))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["seeds"] == "2"  # 2 seeds, not 4 runs


def test_evaluate_round_trip_and_leaderboard_entry(store, tmp_path):
    reg, suite, uri, tmp, results = store
    tracker = Tracker(uri, suite.suite)
    run = tracker.client.search_runs(
        [tracker.experiment_id],
        "tags.`bench.method` = 'bpr_mf' and tags.`bench.seed` = '0' and tags.`bench.kind` = 'cell'")[0]
    trec = Path(tracker.client.download_artifacts(run.info.run_id, "run.trec", str(tmp_path)))
    metrics, info = evaluate_run_file(trec, suite, "syn", reg, tracking_uri=uri, cache_dir=tmp)
    logged = {k.replace("_at_", "@"): v for k, v in run.data.metrics.items()}
    for m in suite.metrics:
        assert metrics[m] == pytest.approx(logged[m], abs=1e-12)
    assert info["label"] == "bpr_mf (external)"
    md = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=tmp_path)[0].read_text()
    assert "| bpr_mf (external) |" in md and "external run" in md
    with pytest.raises(BenchError, match="not the same protocol"):
        evaluate_run_file(trec, suite, "syn", reg, split_id="000000000000", log=False, cache_dir=tmp)
    with pytest.raises(BenchError, match="--label"):
        evaluate_run_file(trec, suite, "syn", reg, label="bpr_mf", log=False, cache_dir=tmp)
    bad = tmp_path / "bad.trec"
    bad.write_text("u1 Q0 nosuchitem 1 1.0 x\n")
    with pytest.raises(BenchError, match="ids not in dataset"):
        evaluate_run_file(bad, suite, "syn", reg, log=False, cache_dir=tmp)


def test_leaderboard_without_runs_is_a_clear_error(store, tmp_path):
    reg, suite, uri, tmp, _ = store
    raw = copy.deepcopy(RAW)
    raw["suite"] = "never_ran"
    s, _ = validate_suite(raw, reg)
    with pytest.raises(BenchError, match="bench run"):
        build_leaderboard(s, reg, tracking_uri=uri, out_dir=tmp_path)


def test_significance_arrow_respects_lower_is_better():
    from harness.leaderboard import BETTER, WORSE, Board, Row, _cell_text
    from harness.significance import Comparison

    row = Row("m", [])
    row.stats = {"ndcg@10": (0.3, 0.0, 1), "neg_hit_rate@10": (0.1, 0.0, 1)}
    comps = {("m", "ndcg@10"): Comparison("m", "ndcg@10", 0.001, 0.001, delta=-0.05),
             ("m", "neg_hit_rate@10"): Comparison("m", "neg_hit_rate@10", 0.001, 0.001, delta=-0.05)}
    board = Board("d", "s", "p", [row], {}, comps, [], lower_better={"neg_hit_rate@10"})
    assert _cell_text(row, "ndcg@10", board, 0.05)[1] == WORSE     # lower ndcg: worse
    assert _cell_text(row, "neg_hit_rate@10", board, 0.05)[1] == BETTER  # fewer dislikes: better
