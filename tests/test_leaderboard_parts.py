"""The leaderboard's three parts (runs / aggregate / render) and the safety of its files:
labels no longer in the suite, markdown escaping, paths built from labels, notes files."""
from __future__ import annotations

import copy
import importlib

import pytest

from harness.api import BenchError
from harness.leaderboard import (BoardOptions, Column, RunRecord, build_boards,
                                 build_leaderboard, confined, md_escape, render_markdown,
                                 safe_stem)
from harness.registry import Registry
from harness.runner import run_suite
from harness.suite import validate_suite

WEIRD = "a|b *x* [l](http://e)"
RAW = {"suite": "lbparts",
       "datasets": [{"name": "synthetic", "label": "syn",
                     "params": {"n_users": 60, "n_items": 80, "n_interactions": 1200}}],
       "methods": [{"name": "pop"}, {"name": "pop", "label": "../x"},
                   {"name": "pop", "label": WEIRD}],
       "seeds": [0, 1], "metrics": ["ndcg@10", "recall@10"], "baseline": "pop"}


@pytest.fixture(scope="module")
def reg():
    r = Registry(autoload=False)
    r.register(importlib.import_module("plugins.baselines"), name="baselines")
    return r


@pytest.fixture(scope="module")
def store(tmp_path_factory, reg):
    tmp = tmp_path_factory.mktemp("lbparts")
    uri = f"sqlite:///{tmp}/mlflow.db"
    suite, cells = validate_suite(copy.deepcopy(RAW), reg)
    results = run_suite(suite, cells, reg, tracking_uri=uri, cache_dir=tmp)
    assert all(r.status == "finished" for r in results)
    return suite, uri, tmp


def _rec(method, seed, value, dataset="d", task="topk"):
    return RunRecord(f"{method}-{seed}", method, dataset, str(seed), "s1", "p1",
                     {"ndcg@10": value}, {"bench.task": task}, int(seed))


def _suite(reg, methods):
    raw = {"suite": "agg", "datasets": [{"name": "synthetic", "label": "d"}],
           "methods": [{"name": "pop", "label": m} for m in methods], "seeds": [0, 1],
           "metrics": ["ndcg@10"], "baseline": methods[0]}
    return validate_suite(raw, reg)[0]


def test_aggregate_without_mlflow_leaves_out_labels_no_longer_in_the_suite(reg):
    suite = _suite(reg, ["a", "b"])
    runs = [_rec("a", 0, 0.1), _rec("a", 1, 0.3), _rec("b", 0, 0.5), _rec("b", 1, 0.7),
            _rec("gone", 0, 0.9)]
    per_unit = {r.run_id: {"ndcg@10": {str(u): r.metrics["ndcg@10"] + u / 100 for u in range(5)}}
                for r in runs}
    [board] = build_boards(suite, reg.catalogue, runs, lambda r: per_unit[r.run_id])
    assert [row.method for row in board.rows] == ["a", "b"]
    assert board.rows[0].stats["ndcg@10"] == pytest.approx((0.2, 0.1414213, 2), rel=1e-5)
    assert board.best["ndcg@10"] == {"b"} and board.unit == "users"
    assert any("gone" in n and "no longer a method" in n for n in board.notes)
    # the default test is over training runs: two seeds are too few for a mark
    assert any("fewer than 3 training seeds" in n for n in board.notes)
    [users] = build_boards(suite, reg.catalogue, runs, lambda r: per_unit[r.run_id],
                           BoardOptions(test="student"))
    assert any("over users" in n for n in users.notes)


def test_aggregate_takes_extra_columns_and_flags(reg):
    suite = _suite(reg, ["a", "b"])
    runs = [_rec("a", 0, 0.1, task="reasoning"), _rec("b", 0, 0.5, task="reasoning")]
    options = BoardOptions(columns=[Column("runs", lambda row: f"{len(row.runs)} run")],
                           flaggers=[lambda row, board: "low" if row.stats["ndcg@10"][0] < 0.2
                                     else None])
    [board] = build_boards(suite, reg.catalogue, runs, lambda r: None, options)
    assert board.column_names == ["runs"] and board.unit == "puzzles"
    assert [row.flags for row in board.rows] == [["low"], []]
    assert board.rows[0].columns == {"runs": "1 run"}
    with pytest.raises(BenchError, match="unknown significance test 'nope'"):
        build_boards(suite, reg.catalogue, runs, lambda r: None, BoardOptions(test="nope"))


def test_markdown_escapes_labels(reg):
    assert md_escape("a|b *x*") == r"a\|b \*x\*"
    suite = _suite(reg, [WEIRD, "b"])
    [board] = build_boards(suite, reg.catalogue, [_rec(WEIRD, 0, 0.1), _rec("b", 0, 0.2)],
                           lambda r: None)
    md = render_markdown(suite, [board], "cmd", 0.05,
                         {"when": "now", "store": "s", "git": "g", "png_name": "x.png"})
    row = next(line for line in md.splitlines() if line.startswith("| a"))
    # method, ndcg, then the extra columns (seeds, budget, steps, epochs, train s)
    assert row.count("|") - row.count(r"\|") == 2 + 1 + len(board.column_names)
    assert r"\[l\](http" in row


def test_paths_from_labels_stay_in_the_output_folder(tmp_path):
    assert safe_stem("../x") == "_x" and safe_stem("a/b c") == "a_b_c" and safe_stem("..") == "_"
    assert confined(tmp_path, "ok.md") == tmp_path / "ok.md"
    for bad in ("../x.md", "a/b.md", ".."):
        with pytest.raises(BenchError, match="outside the output folder"):
            confined(tmp_path, bad)


def test_baseline_dotdot_writes_nothing_outside_leaderboards(store, reg, tmp_path):
    suite, uri, _ = store
    root = tmp_path / "root"
    out = root / "leaderboards"
    out.mkdir(parents=True)
    before = set(root.rglob("*"))
    paths = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=out, baseline="../x")
    assert [p.name for p in paths] == ["lbparts-vs-_x.md", "lbparts-vs-_x.html",
                                       "lbparts-vs-_x.png"]
    assert {p for p in set(root.rglob("*")) - before if p.parent != out} == set()
    assert not (root / "x.md").exists() and not (tmp_path / "x.md").exists()
    md = paths[0].read_text()
    assert "| ../x (baseline) |" in md and r"a\|b \*x\* \[l\](http://e)" in md
    with pytest.raises(BenchError, match="not a method"):
        build_leaderboard(suite, reg, tracking_uri=uri, out_dir=out, baseline="../../y")
    assert not list(root.rglob("*y*")) and not list(tmp_path.rglob("*y.md"))


def test_notes_file_is_linked_and_never_overwritten(store, reg, tmp_path):
    suite, uri, _ = store
    md = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=tmp_path)[0].read_text()
    assert "lbparts-notes.md" not in md
    notes = tmp_path / "lbparts-notes.md"
    notes.write_text("# my analysis\n")
    paths = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=tmp_path)
    assert "[lbparts-notes.md](lbparts-notes.md)" in paths[0].read_text()
    assert "href='lbparts-notes.md'" in paths[1].read_text()
    vs = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=tmp_path, baseline=WEIRD)
    assert "[lbparts-notes.md](lbparts-notes.md)" in vs[0].read_text()
    assert notes.read_text() == "# my analysis\n"


def test_html_scrolls_tables_and_has_pvalues_and_directions(store, reg, tmp_path):
    suite, uri, _ = store
    page = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=tmp_path)[1].read_text()
    assert "<div class='scroll'><table>" in page and "overflow-x:auto" in page
    assert "<table class='pvalues'>" in page and "over training runs paired by seed" in page
    per_user = build_leaderboard(suite, reg, tracking_uri=uri, out_dir=tmp_path,
                                 test="student")[1].read_text()
    assert "paired over users" in per_user
    assert "ndcg@10 ↑" in page and ".plot img{max-width:100%" in page


def test_cli_leaderboard_errors_are_one_line(store, tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from harness.cli import app

    suite, uri, _ = store
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(RAW))
    (tmp_path / "afile").write_text("not a folder")
    cli = CliRunner()
    for args in (["--tracking-uri", f"sqlite:///{tmp_path}/afile/x.db"],  # store cannot open
                 ["--tracking-uri", uri, "--baseline", "nope"]):
        result = cli.invoke(app, ["leaderboard", str(path), *args])
        assert result.exit_code in (1, 2), result.output
        assert "Traceback" not in result.output and result.output.count("error:") == 1
    choice = cli.invoke(app, ["leaderboard", str(path), "--tracking-uri", uri, "--test", "nope"])
    assert choice.exit_code == 2 and "Invalid value" in choice.output  # --test has fixed choices
    ok = cli.invoke(app, ["leaderboard", str(path), "--tracking-uri", uri, "--out", "boards"])
    assert ok.exit_code == 0 and (tmp_path / "boards" / "lbparts.md").exists()


def test_committed_notes_files_are_linked_from_their_boards():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "leaderboards"
    notes = sorted(root.glob("*-notes.md"))
    assert {p.name for p in notes} >= {"ood-notes.md", "signed-notes.md", "preference-notes.md",
                                       "reasoning-notes.md"}
    for p in notes:
        board = root / p.name.replace("-notes.md", ".md")
        assert f"[{p.name}]({p.name})" in board.read_text(), board
