"""Helpers the benchmark report scripts share (harness.leaderboard)."""
import pytest


def test_mean_std_formatting_for_report_scripts():
    from harness.leaderboard import mean_std

    assert mean_std([]) == "–" and mean_std([], empty="n/a") == "n/a"
    assert mean_std([0.5]) == "0.5000"
    assert mean_std([1.0, 3.0], 2) == "2.00 ± 1.41"
    assert mean_std([1.0, float("nan"), 3.0], 1) == "2.0 ± 1.4"  # NaN (not measured) skipped


def test_experiment_runs_names_the_store_when_the_suite_is_missing(tmp_path):
    from harness.leaderboard import experiment_runs

    with pytest.raises(SystemExit, match="no experiment 'nope'"):
        experiment_runs(f"sqlite:///{tmp_path}/m.db", "nope")
