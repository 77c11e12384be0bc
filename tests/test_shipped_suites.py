"""Every suite shipped in suites/ validates, and every smoke suite runs to the end."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

SUITES = sorted((Path(__file__).resolve().parents[1] / "suites").glob("*.yaml"))
cli = CliRunner()


@pytest.mark.parametrize("suite", SUITES, ids=[s.stem for s in SUITES])
def test_shipped_suite_validates(suite):
    result = cli.invoke(app, ["validate", str(suite)])
    assert result.exit_code == 0, result.output


# the ood and signed smoke suites run in their own plugin tests
SMOKE = [s for s in SUITES if s.stem.endswith("-smoke") and s.stem not in ("ood-smoke", "signed-smoke")]


@pytest.mark.parametrize("suite", SMOKE, ids=[s.stem for s in SMOKE])
def test_smoke_suite_runs(suite, workdir):
    result = cli.invoke(app, ["run", str(suite), "-q", "--tracking-uri", "sqlite:///smoke.db"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output
    # LLM and text tasks log the sampled generations/predictions behind their metrics
    import mlflow

    from harness.suite import load_suite
    from harness.tracking import absolute_uri
    from harness.registry import Registry

    suite_obj, _ = load_suite(suite, Registry())
    client = mlflow.MlflowClient(absolute_uri("sqlite:///smoke.db"))
    exp = client.get_experiment_by_name(suite_obj.suite)
    cells = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'cell'")
    tasks = {r.data.tags.get("bench.task") for r in cells}
    if tasks & {"reasoning", "ctr", "personalized_generation", "text_classification"}:
        for run in cells:
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert "samples.jsonl" in names, (run.info.run_name, names)
