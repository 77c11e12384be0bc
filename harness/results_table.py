"""Results as data: the leaderboard's numbers as one tidy table (``bench results``,
``harness.results`` in a notebook).

The table is built from the same boards ``bench leaderboard`` renders
(:func:`harness.leaderboard.load_boards`), so every mean, std and p-value in it is the
number on the board. One row per (dataset, method, metric); ``per_seed=True`` gives one
row per finished run and metric instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

FORMATS = ("csv", "json", "parquet", "latex")

BOARD_COLUMNS = ["suite", "dataset", "method", "metric", "direction", "mean", "std", "n_seeds",
                 "best", "baseline", "delta", "p_value", "p_holm", "significant", "test", "unit",
                 "flags", "split_id", "protocol_id"]
SEED_COLUMNS = ["suite", "dataset", "method", "seed", "metric", "value", "run_id", "split_id",
                "protocol_id"]


def _suite_and_registry(suite: Union[str, Path, Any], registry: Any):
    from .registry import Registry
    from .suite import load_suite

    registry = registry or Registry()
    if isinstance(suite, (str, Path)):
        suite, _ = load_suite(suite, registry)
    return suite, registry


def results(suite: Union[str, Path, Any], tracking_uri: Optional[str] = None, *,
            per_seed: bool = False, registry: Any = None, test: str = "seeds",
            alpha: float = 0.05, baseline: Optional[str] = None):
    """A pandas DataFrame of a suite's finished results (a suite file path or a ``Suite``).

    Columns (board): suite, dataset, method, metric, direction (max|min), mean, std
    (sample std over seeds), n_seeds, best, baseline, delta (mean difference to the
    baseline over the paired units), p_value, p_holm (Holm-adjusted), significant
    (p_holm <= alpha), test, unit, flags, split_id, protocol_id. With ``per_seed``:
    suite, dataset, method, seed, metric, value, run_id, split_id, protocol_id."""
    import pandas as pd

    from .leaderboard import BoardOptions, load_boards
    from .leaderboard.build import resolve_baseline

    suite, registry = _suite_and_registry(suite, registry)
    suite, _ = resolve_baseline(suite, baseline)
    boards = load_boards(suite, registry, tracking_uri, BoardOptions(test=test))
    rows: list[dict[str, Any]] = []
    for b in boards:
        for row in b.rows:
            if per_seed:
                for run in row.runs:
                    for metric in suite.metrics:
                        if metric in run.metrics:
                            rows.append({"suite": suite.suite, "dataset": b.dataset,
                                         "method": row.method, "seed": run.seed, "metric": metric,
                                         "value": run.metrics[metric], "run_id": run.run_id,
                                         "split_id": b.split_id, "protocol_id": b.protocol_id})
                continue
            for metric in suite.metrics:
                if metric not in row.stats:
                    continue
                mean, std, n = row.stats[metric]
                comp = b.comparisons.get((row.method, metric))
                rows.append({
                    "suite": suite.suite, "dataset": b.dataset, "method": row.method,
                    "metric": metric, "direction": "min" if metric in b.lower_better else "max",
                    "mean": mean, "std": std, "n_seeds": n,
                    "best": row.method in b.best.get(metric, set()),
                    "baseline": comp.baseline if comp else b.baseline_of.get(row.method),
                    "delta": comp.delta if comp else None,
                    "p_value": comp.p_value if comp else None,
                    "p_holm": comp.p_holm if comp else None,
                    "significant": comp.significant(alpha) if comp else None,
                    "test": b.test if comp else None,
                    "unit": (comp.unit if comp.unit != "users" else b.unit) if comp else None,
                    "flags": "; ".join(row.flags), "split_id": b.split_id,
                    "protocol_id": b.protocol_id})
    return pd.DataFrame(rows, columns=SEED_COLUMNS if per_seed else BOARD_COLUMNS)


def write(frame, fmt: str, out: Optional[Path] = None) -> Optional[str]:
    """Serialise ``frame``: returned as text when ``out`` is None (csv, json, latex), else
    written to ``out``. Parquet is binary and needs ``out``."""
    if fmt not in FORMATS:
        from .api import BenchError

        raise BenchError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}.")
    if fmt == "parquet":
        if out is None:
            from .api import BenchError

            raise BenchError("--format parquet is binary: give a file with --out.")
        frame.to_parquet(out, index=False)
        return None
    if fmt == "csv":
        text = frame.to_csv(index=False, float_format="%.17g")
    elif fmt == "json":
        text = frame.to_json(orient="records", indent=1, double_precision=15)
    else:
        text = frame.to_latex(index=False, float_format="%.4f", na_rep="–", escape=True)
    if out is not None:
        Path(out).write_text(text)
        return None
    return text
