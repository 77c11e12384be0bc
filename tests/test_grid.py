"""Grid control: --set, --only, --dry-run, bench validate -v and suites that extend others."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.testing import tiny_suite
from harness.cli import app
from harness.grid import GridError, apply_set, parse_only
from harness.plan import plan_cells
from harness.registry import Registry
from harness.suite import load_suite

cli = CliRunner()
ROW = re.compile(r"│ (\S+)\s+│ (\S+)\s+│ (\d+)\s+│ ([0-9a-f]{16}) │ (\w+)\s+│ (\w+)\s+│")


def _listing(output: str) -> dict[tuple[str, int], tuple[str, str]]:
    """(method, seed) -> (cell hash, status) from a --dry-run / validate -v table."""
    return {(m, int(s)): (h, st) for m, _, s, h, _, st in ROW.findall(output)}


@pytest.fixture
def suite_file(write_suite):
    return write_suite(tiny_suite())


def test_set_is_validated_like_the_file_and_changes_only_its_cells_hashes(suite_file, workdir):
    plain = _listing(cli.invoke(app, ["run", str(suite_file), "--dry-run"]).output)
    res = cli.invoke(app, ["run", str(suite_file), "--dry-run",
                           "--set", "methods.bpr_mf.params.lr=0.01"])
    assert res.exit_code == 0, res.output
    changed = _listing(res.output)
    assert len(plain) == len(changed) == 4
    for (method, seed), (h, status) in changed.items():
        assert status == "pending"
        assert (h == plain[(method, seed)][0]) == (method == "pop")
    # the same value written into the file gives the same hashes
    raw = tiny_suite()
    raw["methods"][1]["params"]["lr"] = 0.01
    edited = workdir / "edited.yaml"
    edited.write_text(yaml.safe_dump(raw))
    assert _listing(cli.invoke(app, ["run", str(edited), "--dry-run"]).output) == changed
    bad = cli.invoke(app, ["validate", str(suite_file), "--set", "methods.bpr_mf.params.lr=fast"])
    assert bad.exit_code == 2 and "methods[1].params.lr" in bad.output
    bad = cli.invoke(app, ["validate", str(suite_file), "--set", "methods.bpr_mf.params.dims=8"])
    assert bad.exit_code == 2 and "dims" in bad.output
    bad = cli.invoke(app, ["validate", str(suite_file), "--set", "methods.bprmf.params.lr=0.1"])
    assert bad.exit_code == 2 and "Did you mean: bpr_mf" in bad.output


def test_set_paths_and_values():
    raw = tiny_suite()
    assert apply_set(raw, "seeds=[3, 4]")["seeds"] == [3, 4]
    assert apply_set(raw, "methods.pop.params.x=1")["methods"][0]["params"] == {"x": 1}
    assert apply_set(raw, "datasets.0.params.n_users=10")["datasets"][0]["params"]["n_users"] == 10
    assert apply_set(raw, "tracking.uri=sqlite:///x.db")["tracking"]["uri"] == "sqlite:///x.db"
    assert raw == tiny_suite()  # the input is not modified
    for bad, msg in (("seeds", "KEY.PATH=VALUE"), ("seeds.0.x=1", "is a value"),
                     ("a..b=1", "empty key")):
        with pytest.raises(GridError, match=msg):
            apply_set(raw, bad)


def test_only_gives_the_expected_cells(suite_file):
    reg = Registry()
    def cells(*only):
        return [(c.method.key, c.seed) for c in load_suite(suite_file, reg, only=only)[1]]
    assert cells("method=bpr_mf,seed=0") == [("bpr_mf", 0)]
    assert cells("method=bpr_mf,pop", "seed=1") == [("pop", 1), ("bpr_mf", 1)]
    assert cells("dataset=synthetic") == [("pop", 0), ("pop", 1), ("bpr_mf", 0), ("bpr_mf", 1)]
    assert cells("seed=0", "seed=1", "method=pop") == [("pop", 0), ("pop", 1)]
    assert parse_only(["method=a,b,seed=0"]) == {"method": {"a", "b"}, "seed": {"0"}}
    for bad, msg in (("seed=7", "no seed '7'"), ("methd=pop", "Did you mean: method"),
                     ("pop", "KEY=VALUE")):
        res = cli.invoke(app, ["run", str(suite_file), "--only", bad])
        assert res.exit_code == 2 and msg in res.output and "Traceback" not in res.output


def test_dry_run_runs_nothing_and_lists_what_a_run_does(suite_file, workdir):
    res = cli.invoke(app, ["run", str(suite_file), "--dry-run"])
    assert res.exit_code == 0 and "0 done, 4 to run" in res.output
    assert not (workdir / "mlflow.db").exists()  # no store created, no run logged
    planned = _listing(res.output)
    run = cli.invoke(app, ["run", str(suite_file), "--only", "seed=0", "-q"])
    assert run.exit_code == 0, run.output
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    exp = client.get_experiment_by_name("tiny")
    hashes = {(r.data.tags["bench.method"], int(r.data.tags["bench.seed"])): r.data.tags["bench.cell_hash"]
              for r in client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'cell'")}
    assert hashes == {k: v[0] for k, v in planned.items() if k[1] == 0}
    n_runs = len(client.search_runs([exp.experiment_id]))
    after = cli.invoke(app, ["run", str(suite_file), "--dry-run"])
    assert "2 done, 2 to run" in after.output
    assert {k: v[1] for k, v in _listing(after.output).items()} == {
        ("pop", 0): "done", ("bpr_mf", 0): "done", ("pop", 1): "pending", ("bpr_mf", 1): "pending"}
    assert len(client.search_runs([exp.experiment_id])) == n_runs  # the dry run logged nothing
    forced = cli.invoke(app, ["run", str(suite_file), "--dry-run", "--force"])
    assert "0 done, 4 to run" in forced.output
    verbose = cli.invoke(app, ["validate", "-v", str(suite_file)])
    assert verbose.exit_code == 0 and _listing(verbose.output) == _listing(after.output)
    quiet = cli.invoke(app, ["validate", str(suite_file)])
    assert "cell hash" not in quiet.output


def test_plan_marks_a_broken_dataset(workdir, monkeypatch):
    reg = Registry()
    # (a missing `path` is refused by validate; ml-100k absent from the data home is not)
    monkeypatch.setenv("BENCH_DATA_HOME", str(workdir / "empty-data-home"))
    raw = tiny_suite(datasets=[{"name": "ml-100k"}])
    path = workdir / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    suite, cells = load_suite(path, reg)
    planned = plan_cells(suite, cells, reg)
    assert all(p.status.startswith("dataset error") for p in planned)


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_extends_merges_keys_and_entries(workdir):
    reg = Registry()
    _write(workdir / "base.yaml", tiny_suite(description="base", baseline="pop"))
    child = _write(workdir / "child.yaml", {
        "extends": "base.yaml", "suite": "child", "seeds": [0],
        "methods": {"bpr_mf": {"params": {"epochs": 1}},
                    "bpr-small": {"name": "bpr_mf", "params": {"dim": 8}}}})
    suite, cells = load_suite(child, reg)
    assert suite.suite == "child" and suite.description == "base" and suite.seeds == [0]
    params = {m.key: m.params for m in suite.methods}
    assert params["bpr_mf"] == {"dim": 16, "epochs": 1, "batch_size": 256}  # merged key by key
    assert params["bpr-small"] == {"dim": 8} and len(cells) == 3
    drop = _write(workdir / "drop.yaml", {"extends": "child.yaml", "suite": "drop",
                                          "methods": {"bpr_mf": None}})
    assert [m.key for m in load_suite(drop, reg)[0].methods] == ["pop", "bpr-small"]
    replace = _write(workdir / "replace.yaml", {"extends": "base.yaml", "methods": [{"name": "pop"}]})
    assert [m.key for m in load_suite(replace, reg)[0].methods] == ["pop"]
    _write(workdir / "a.yaml", {"extends": "b.yaml"})
    _write(workdir / "b.yaml", {"extends": "a.yaml"})
    for name, msg in (("a.yaml", "cycle"), ):
        res = cli.invoke(app, ["validate", str(workdir / name)])
        assert res.exit_code == 2 and msg in res.output
    missing = _write(workdir / "m.yaml", {"extends": "nope.yaml"})
    res = cli.invoke(app, ["validate", str(missing)])
    assert res.exit_code == 2 and "no such suite file" in res.output
    bad_drop = _write(workdir / "bd.yaml", {"extends": "base.yaml", "methods": {"nope": None}})
    res = cli.invoke(app, ["validate", str(bad_drop)])
    assert res.exit_code == 2 and "cannot drop 'nope'" in res.output


SUITES = Path(__file__).resolve().parents[1] / "suites"


@pytest.mark.parametrize("smoke", ["negative_sampling", "ood", "preference", "reasoning", "signed",
                                   "tta"])
def test_smoke_suites_extend_their_suites(smoke):
    raw = yaml.safe_load((SUITES / f"{smoke}-smoke.yaml").read_text())
    assert raw["extends"] == f"{smoke}.yaml"
    assert isinstance(raw["methods"], dict)  # overrides by label, not a copy of the list
    suite, cells = load_suite(SUITES / f"{smoke}-smoke.yaml", Registry())
    assert suite.suite == f"{smoke}-smoke" and len(suite.seeds) == 1 and cells


def test_cli_version_completion_flags_and_choices():
    res = cli.invoke(app, ["--version"])
    assert res.exit_code == 0 and re.match(r"bench \d+\.\d+", res.output)
    help_text = cli.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "--install-completion" in help_text
    run_help = cli.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    force = next(line for line in run_help.splitlines() if "--force" in line)
    assert "<bool>" not in force and "BOOLEAN" not in force
    ls_help = cli.invoke(app, ["ls", "--help"], env={"COLUMNS": "200"}).output
    assert "methods" in ls_help and "samplers" in ls_help
    lb_help = cli.invoke(app, ["leaderboard", "--help"], env={"COLUMNS": "200"}).output
    assert "student" in lb_help and "fisher" in lb_help
    assert cli.invoke(app, ["ls", "nope"]).exit_code == 2
