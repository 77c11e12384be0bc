"""Suite validation: every malformed input gives exit 2 and a clear one-paragraph message."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.testing import tiny_suite
from harness.cli import app

cli = CliRunner()


def _invalid(path, *expected: str):
    for command in ("validate", "run"):
        result = cli.invoke(app, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        for text in expected:
            assert text in result.output, result.output


def test_valid_suite_validates(write_suite):
    result = cli.invoke(app, ["validate", str(write_suite(tiny_suite()))])
    assert result.exit_code == 0 and "4 cells" in result.output


def test_not_a_mapping(write_suite):
    _invalid(write_suite("- just\n- a list\n"), "suite.yaml", "must be a YAML mapping")


def test_unknown_method_suggests_closest(write_suite):
    _invalid(write_suite(tiny_suite(methods=[{"name": "bpr_fm"}])),
             "methods[0].name", "unknown method 'bpr_fm'", "bpr_mf")


def test_unknown_dataset(write_suite):
    _invalid(write_suite(tiny_suite(datasets=[{"name": "ml-100"}])),
             "datasets[0].name", "unknown dataset 'ml-100'", "ml-100k")


def test_wrong_types(write_suite):
    suite = tiny_suite(seeds="zero")
    suite["methods"][1]["params"]["dim"] = "large"
    _invalid(write_suite(suite), "seeds")
    _invalid(write_suite(tiny_suite(methods=[{"name": "bpr_mf", "params": {"dim": "large"}}])),
             "methods[0].params.dim")


def test_unknown_method_param_names_the_key(write_suite):
    _invalid(write_suite(tiny_suite(methods=[{"name": "bpr_mf", "params": {"embedding": 8}}])),
             "methods[0].params.embedding", "Known:")


def test_unknown_top_level_key_suggests(write_suite):
    suite = tiny_suite()
    suite["metric"] = suite.pop("metrics")
    _invalid(write_suite(suite), "metric", "unknown key", "metrics")


def test_python_tag_is_refused(write_suite):
    _invalid(write_suite("suite: !!python/object/apply:os.system ['echo pwned']\n"),
             "safe", "line 1")


def test_bad_metric_and_missing_file(write_suite, workdir):
    _invalid(write_suite(tiny_suite(metrics=["ndgc@10"])), "unknown metric 'ndgc'", "ndcg")
    _invalid(write_suite(tiny_suite(metrics=["ndcg"])), "needs a cutoff")
    _invalid(workdir / "nope.yaml", "no such suite file")


def test_method_task_compatibility(write_suite):
    suite = tiny_suite()
    suite["datasets"][0]["task"] = "sequential"
    _invalid(write_suite(suite), "supports tasks")


def test_duplicate_labels_and_unknown_split(write_suite):
    _invalid(write_suite(tiny_suite(methods=[{"name": "pop"}, {"name": "pop"}])), "appears twice")
    suite = tiny_suite()
    suite["datasets"][0]["split"] = {"strategy": "randomratio"}
    _invalid(write_suite(suite), "unknown split strategy", "random_ratio")


def test_dataset_loader_errors_fail_cells_not_the_grid(write_suite, workdir, monkeypatch):
    # a missing `path` is refused by validate; data that is only missing at run time
    # (ml-100k not fetched into an empty data home) fails that dataset's cells
    monkeypatch.setenv("BENCH_DATA_HOME", str(workdir / "empty-data-home"))
    suite = tiny_suite(datasets=[{"name": "ml-100k"}, tiny_suite()["datasets"][0]], seeds=[0])
    result = cli.invoke(app, ["run", str(write_suite(suite)), "-q"])
    assert result.exit_code == 1
    assert "bench data get ml-100k" in result.output
    assert "2 cell(s) ran" not in result.output and "4 cell(s) ran" in result.output


def test_methods_can_be_restricted_to_some_datasets(write_suite, registry):
    from harness.suite import load_suite

    suite = tiny_suite(seeds=[0])
    suite["datasets"].append({"name": "synthetic", "label": "seq", "task": "sequential",
                              "split": {"strategy": "leave_one_out"}})
    suite["methods"] = [{"name": "bpr_mf", "datasets": ["synthetic"]},
                        {"name": "sasrec", "datasets": ["seq"]}]
    _, cells = load_suite(write_suite(suite), registry)
    assert sorted((c.method.key, c.dataset.key) for c in cells) == [("bpr_mf", "synthetic"), ("sasrec", "seq")]
    suite["methods"][1]["datasets"] = ["sequ"]
    _invalid(write_suite(suite), "methods[1].datasets", "'sequ' is not one of", "seq")
