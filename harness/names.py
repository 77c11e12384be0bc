"""The one mapping between metric names and MLflow metric keys.

MLflow refuses ``@`` in a metric key, so ``ndcg@10`` is logged as ``ndcg_at_10``. Every
writer and reader (runner, training loop, tuner, leaderboard, plugins through
:mod:`harness.api`) goes through these two functions. No imports: the training loop and
the API use it without pulling in the scorer.
"""
from __future__ import annotations


def mlflow_name(metric: str) -> str:
    """``ndcg@10`` -> ``ndcg_at_10`` (MLflow metric names cannot contain '@')."""
    return metric.replace("@", "_at_")


def metric_name_from_mlflow(name: str) -> str:
    """The inverse of :func:`mlflow_name`: ``ndcg_at_10`` -> ``ndcg@10``."""
    return name.replace("_at_", "@")
