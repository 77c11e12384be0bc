"""A metric that is one statistic of the whole run (a global AUC) has no per-unit values;
the seed-level tests and claims still see it, one value per training run."""
from __future__ import annotations

from harness.leaderboard.aggregate import Row, per_seed_values
from harness.leaderboard.runs import RunRecord


def _run(seed: str, auc: float) -> RunRecord:
    return RunRecord(f"r{seed}", "m", "d", seed, "s", "p", {"auc": auc, "uauc": 0.5}, {}, 0)


def test_run_level_metric_enters_as_one_unit_per_run():
    runs = [_run("0", 0.61), _run("1", 0.63)]
    per_unit = {"r0": {"uauc": {"u1": 0.4, "u2": 0.6}}, "r1": {"uauc": {"u1": 0.5, "u2": 0.7}}}
    out, notes = per_seed_values([Row("m", runs)], ["auc", "uauc", "ndcg@10"],
                                 lambda r: per_unit[r.run_id])
    assert out["m"]["auc"] == {"0": {"run": 0.61}, "1": {"run": 0.63}}
    assert out["m"]["uauc"] == {"0": {"u1": 0.4, "u2": 0.6}, "1": {"u1": 0.5, "u2": 0.7}}
    assert "ndcg@10" not in out["m"] and not notes  # neither logged nor per-unit: untested
