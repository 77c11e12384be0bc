"""Bad input exits 2 with one line and no traceback, before anything runs (issue 22 items
4, 9, 10; issue 13's "bench validate checks every plugin part a suite names").

Each wrong suite below differs from a valid one in one key; `bench validate` must name
that key and, for a wrong name, offer the closest names of the same kind."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from harness.testing import tiny_suite
from harness.cli import app

cli = CliRunner()


def _error_line(args: list[str]) -> str:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def _validate(write_suite, suite, *expected: str) -> str:
    line = _error_line(["validate", str(write_suite(suite))])
    for text in expected:
        assert text in line, line
    return line


def _with_method(params: dict, name: str = "bpr_mf", **extra) -> dict:
    return tiny_suite(methods=[{"name": name, "params": params, **extra}])


# --- issue 22 item 4: params that used to pass validate ----------------------------------------

@pytest.mark.parametrize("params, key", [
    ({"epochs": 0}, "params.epochs"),
    ({"lr": 1e30}, "params.lr"),
    ({"lr": float("nan")}, "params.lr"),
    ({"lr": float("inf")}, "params.lr"),
    ({"lr": 0}, "params.lr"),
    ({"dim": -1}, "params.dim"),
    ({"batch_size": 0}, "params.batch_size"),
    ({"eval_every": 0}, "params.eval_every"),
    ({"patience": 0}, "params.patience"),
    ({"reg_weight": -1}, "params.reg_weight"),
])
def test_out_of_range_method_params_are_refused(write_suite, params, key):
    _validate(write_suite, _with_method({"dim": 8, **params}), f"methods[0].{key}")


@pytest.mark.parametrize("method, params, key", [
    ("sasrec", {"epochs": 0}, "params.epochs"),
    ("lightgcn", {"n_layers": 0}, "params.n_layers"),
    ("tta4sr", {"backbone_seed": 2**64}, "params.backbone_seed"),
])
def test_other_methods_bound_their_params_too(write_suite, method, params, key):
    suite = tiny_suite(methods=[{"name": method, "params": params}])
    suite["datasets"][0]["task"] = "sequential" if method != "lightgcn" else "topk"
    _validate(write_suite, suite, f"methods[0].{key}")


def test_seed_beyond_32_bits_is_refused(write_suite):
    _validate(write_suite, tiny_suite(seeds=[2**64]), "seeds[0]")
    suite = tiny_suite()
    suite["datasets"][0]["split"] = {"seed": -1}
    _validate(write_suite, suite, "datasets[0].split.seed")


# --- issue 13: every plugin part a suite names --------------------------------------------------

def test_unknown_sampler_offers_the_closest_sampler(write_suite):
    _validate(write_suite, _with_method({"sampler": "unifrom"}),
              "methods[0].params.sampler", "unifrom", "uniform")


def test_unknown_sampler_param_offers_the_sampler_s_own_params(write_suite):
    line = _validate(write_suite, _with_method({"sampler": "dns",
                                                "sampler_params": {"n_candidate": 8}}),
                     "methods[0].params.sampler_params.n_candidate", "n_candidates")
    assert "beta" not in line  # the closest names of *that* sampler's params


def test_out_of_range_sampler_param_is_refused(write_suite):
    _validate(write_suite, _with_method({"sampler": "dns", "sampler_params": {"n_candidates": 0}}),
              "methods[0].params.sampler_params.n_candidates")


def test_sampler_n_is_the_harness_s(write_suite):
    _validate(write_suite, _with_method({"sampler": "uniform", "sampler_params": {"n": 4}}),
              "methods[0].params.sampler_params.n", "n_negatives")


def test_unknown_dataset_param_offers_the_closest(write_suite):
    suite = tiny_suite()
    suite["datasets"][0]["params"]["n_user"] = 50
    _validate(write_suite, suite, "datasets[0].params.n_user", "n_users")


def test_out_of_range_dataset_param_is_refused(write_suite):
    suite = tiny_suite()
    suite["datasets"][0]["params"]["n_items"] = 0
    _validate(write_suite, suite, "datasets[0].params.n_items")


def test_missing_data_folder_is_refused(write_suite, workdir):
    suite = tiny_suite(datasets=[{"name": "atomic", "params": {"path": str(workdir / "nope")}}])
    _validate(write_suite, suite, "datasets[0].params.path", "does not exist")
    suite = tiny_suite(datasets=[{"name": "ml-100k", "params": {"path": "missing-ml"}}])
    _validate(write_suite, suite, "datasets[0].params.path", "missing-ml")


@pytest.mark.parametrize("sha", ["../../etc", "abc", "g" * 64, "0" * 63])
def test_sha256_must_be_64_hex_characters(write_suite, sha):
    suite = tiny_suite(datasets=[{"name": "ml-100k",
                                  "params": {"url": "https://example.org/x.zip", "sha256": sha}}])
    _validate(write_suite, suite, "datasets[0].params.sha256")


def test_sha256_is_checked_by_the_loader_too(tmp_path, monkeypatch):
    from harness.api import BenchError
    from harness.data import sources

    monkeypatch.setenv("BENCH_DATA_HOME", str(tmp_path))
    with pytest.raises(BenchError, match="64 hex"):
        sources.fetch_url("https://example.org/x.zip", "../" * 3 + "x" * 55)
    assert not any(tmp_path.iterdir())  # no folder was made from the value


def test_metric_of_another_task_is_refused(write_suite):
    suite = tiny_suite(metrics=["ndcg@10", "accuracy"])
    _validate(write_suite, suite, "metrics", "'accuracy'", "'topk'")


def test_topk_metric_on_a_reasoning_dataset_offers_that_task_s_metrics(write_suite):
    suite = tiny_suite(datasets=[{"name": "knights_knaves",
                                  "params": {"n_train": 8, "n_valid": 2, "n_test": 2}}],
                       methods=[{"name": "sft_init"}], metrics=["accurcy", "ndcg@10"])
    result = cli.invoke(app, ["validate", str(write_suite(suite))])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "accuracy" in result.output  # the closest name for the misspelt one
    suite["metrics"] = ["ndcg@10"]
    _validate(write_suite, suite, "'ndcg@10'", "reasoning")


def test_cutoff_on_a_metric_that_takes_none_is_refused(write_suite):
    suite = tiny_suite(datasets=[{"name": "knights_knaves",
                                  "params": {"n_train": 8, "n_valid": 2, "n_test": 2}}],
                       methods=[{"name": "sft_init"}], metrics=["accuracy@10"])
    _validate(write_suite, suite, "accuracy@10", "takes no cutoff")


@pytest.mark.parametrize("label", ["bpr\tmf", "bpr\nmf", " bpr", "bpr\x00"])
def test_method_label_with_a_control_character_is_refused(write_suite, label):
    _validate(write_suite, _with_method({"dim": 8}, label=label), "methods[0].label")


def test_label_with_spaces_gives_a_run_file_bench_evaluate_accepts(workdir, registry):
    """run.trec percent-encodes whitespace (`my pop` -> `my%20pop`), so the harness's own
    run file re-scores to its cell's metrics instead of being rejected."""
    import mlflow

    from harness.evaluate_run import evaluate_run_file, read_trec
    from harness.runner import run_suite
    from harness.suite import validate_suite
    from harness.tracking import Tracker

    suite, cells = validate_suite(tiny_suite(methods=[{"name": "pop", "label": "my pop"}],
                                             seeds=[0]), registry)
    (result,) = run_suite(suite, cells, registry)
    assert result.status == "finished"
    tracker = Tracker(suite.tracking.uri, suite.suite)
    run = tracker.client.search_runs([tracker.experiment_id],
                                     "tags.`bench.kind` = 'cell'")[0]
    trec = workdir / "run.trec"
    trec.write_text(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/run.trec"))
    assert all(len(line.split()) == 6 for line in trec.read_text().splitlines())
    assert read_trec(trec)[3] == {"my pop"}
    metrics, _ = evaluate_run_file(trec, suite, "synthetic", registry, label="again", log=False)
    for m in suite.metrics:
        assert metrics[m] == pytest.approx(result.metrics[m], abs=1e-12)


def test_every_shipped_suite_still_validates():
    import pathlib

    for path in sorted(pathlib.Path(__file__).resolve().parents[1].glob("suites/*.yaml")):
        result = cli.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, (path, result.output)


# --- issue 22 item 10: suite and run files ------------------------------------------------------

def test_suite_path_that_is_a_folder(workdir):
    (workdir / "suites.d").mkdir()
    assert "is a folder" in _error_line(["validate", str(workdir / "suites.d")])


def test_binary_suite_file(workdir):
    (workdir / "s.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert "binary" in _error_line(["validate", str(workdir / "s.yaml")])


def test_non_utf8_suite_file(workdir, write_suite):
    text = yaml.safe_dump(tiny_suite(description="caf\u00e9"), allow_unicode=True)
    (workdir / "s.yaml").write_bytes(text.encode("latin-1"))
    line = _error_line(["run", str(workdir / "s.yaml")])
    assert "UTF-8" in line and "line" in line


def test_yaml_alias_bomb_is_refused_quickly(workdir):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("suite: bomb\ndatasets: [*i]\nmethods: [{name: pop}]")
    (workdir / "bomb.yaml").write_text("\n".join(lines) + "\n")
    assert len((workdir / "bomb.yaml").read_bytes()) < 1500
    assert "alias" in _error_line(["validate", str(workdir / "bomb.yaml")])


def test_recursive_yaml_alias_is_refused(workdir):
    (workdir / "r.yaml").write_text("suite: r\ndatasets: &d [*d]\nmethods: [{name: pop}]\n")
    result = cli.invoke(app, ["validate", str(workdir / "r.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def test_shipped_aliases_still_work(write_suite):
    text = ("suite: ok\ndatasets: [{name: synthetic, params: &p {n_users: 30, n_items: 40, "
            "n_interactions: 400}}]\nmethods:\n  - {name: bpr_mf, params: &b {dim: 4, epochs: 1}}\n"
            "  - {name: bpr_mf, label: other, params: {<<: *b, dim: 8}}\n")
    result = cli.invoke(app, ["validate", str(write_suite(text))])
    assert result.exit_code == 0, result.output


def test_evaluate_on_a_binary_or_missing_run_file(workdir, write_suite):
    suite = write_suite(tiny_suite())
    (workdir / "run.trec").write_bytes(bytes(range(256)) * 4)
    for run_file in ("run.trec", "nope.trec"):
        line = _error_line(["evaluate", "--run", run_file, "--suite", str(suite),
                            "--dataset", "synthetic"])
        assert run_file in line


def test_evaluate_refuses_a_label_with_whitespace(workdir, write_suite):
    suite = write_suite(tiny_suite())
    (workdir / "run.trec").write_text("1 Q0 1 1 1.0 x\n")
    line = _error_line(["evaluate", "--run", "run.trec", "--suite", str(suite),
                        "--dataset", "synthetic", "--label", "my run"])
    assert "--label" in line


def test_cli_error_is_one_line_in_a_real_process(workdir):
    """The installed command, not just the typer runner: exit 2, no traceback."""
    (workdir / "d").mkdir()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "d"],
                          capture_output=True, text=True, cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --- issue 22 item 9: data files -------------------------------------------------------------------

def _atomic_suite(folder) -> dict:
    return tiny_suite(datasets=[{"name": "atomic", "params": {"path": str(folder), "name": "toy"}}],
                      methods=[{"name": "pop"}], seeds=[0])


def _write_inter(folder, body: bytes) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "toy.inter").write_bytes(body)


GOOD = b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + b"".join(
    f"{u}\t{i}\t{1 + (u + i) % 5}\t{1000 + u * 50 + i}\n".encode()
    for u in range(1, 21) for i in range(1, 16) if (u * i) % 3)


@pytest.mark.parametrize("body, expected", [
    (GOOD.replace(b"\t3\t", b"\tthree\t", 1), ["line", "column 'rating", "'three'"]),
    (GOOD.replace(b"\t1052\n", b"\tyesterday\n", 1), ["column 'timestamp", "'yesterday'"]),
    (GOOD.replace(b"\t3\t", b"\tnan\t", 1), ["column 'rating", "'nan'"]),
    (GOOD.replace(b"\t3\t", b"\t\t", 1), ["column 'rating", "empty"]),
    (b"", ["empty"]),
    (b"\x00\x01\x02binary\xff" * 50, ["binary"]),
    (GOOD.replace(b"user_id", b"us\xe9r_id"), ["UTF-8"]),
    (b"user_id:token\titem_id:token\n1\t2\t3\t4\t5\n\"\n", ["toy.inter"]),
])
def test_bad_data_file_is_one_line_naming_the_file(workdir, write_suite, body, expected):
    folder = workdir / "toy"
    _write_inter(folder, body)
    path = write_suite(_atomic_suite(folder))
    for command in ("validate", "run"):  # read at validate time: nothing runs
        line = _error_line([command, str(path)])
        assert str(folder / "toy.inter") in line and "datasets[0].params.path" in line, line
        for text in expected:
            assert text in line, line


def test_good_data_file_runs(workdir, write_suite):
    folder = workdir / "toy"
    _write_inter(folder, GOOD)
    result = cli.invoke(app, ["run", str(write_suite(_atomic_suite(folder))), "-q"])
    assert result.exit_code == 0, result.output


def test_grouplens_layout_names_file_line_and_column(tmp_path):
    from harness.api import BenchError
    from harness.data.sources import load_grouplens_100k

    (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n2\t1\tfive\t881250950\n")
    with pytest.raises(BenchError, match=r"u\.data: line 2, column 'rating': 'five'"):
        load_grouplens_100k(tmp_path)


def test_a_replaced_ml100k_wheel_is_refused_on_load(tmp_path, monkeypatch):
    from harness.api import BenchError
    from harness.data import sources

    monkeypatch.setenv("BENCH_DATA_HOME", str(tmp_path))
    (tmp_path / sources.RECBOLE_WHEEL).write_bytes(b"PK\x03\x04 not the real wheel")
    with pytest.raises(BenchError, match="damaged or was replaced"):
        sources.load_ml100k()
