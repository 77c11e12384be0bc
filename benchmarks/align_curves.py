"""Convergence plots and summary figures for the alignment suites, read from MLflow.

    python benchmarks/align_curves.py preference --tracking-uri sqlite:///.bench_cache/mlflow-align.db
    python benchmarks/align_curves.py reasoning  --tracking-uri sqlite:///.bench_cache/mlflow-align.db

Writes leaderboards/<suite>_curves.png (metric vs step, mean over seeds, one line per
method) and prints a markdown table of final metrics as mean ± std over seeds (the std
is the stability figure), plus accuracy by difficulty for the reasoning suite.
"""
from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

CURVES = {"preference": ["curve_kl_target", "curve_expected_reward"],
          "reasoning": ["valid_accuracy", "train_level_1", "train_reward"]}
TABLE = {"preference": ["kl_target", "expected_reward", "target_reward", "kl_ref"],
         "reasoning": ["accuracy", "accuracy_d2", "accuracy_d3", "accuracy_sampled",
                       "format_valid", "mean_reward", "kl_init", "reward_gap"]}


def finished_runs(client, suite: str):
    exp = client.get_experiment_by_name(suite)
    if exp is None:
        raise SystemExit(f"no experiment '{suite}' in this store")
    runs = client.search_runs([exp.experiment_id],
                              filter_string="tags.`bench.status` = 'finished'", max_results=5000)
    latest = {}
    for r in sorted(runs, key=lambda r: r.info.start_time):  # newest run per (method, seed)
        latest[(r.data.tags["bench.method"], r.data.tags["bench.seed"])] = r
    return list(latest.values())


def fmt(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", choices=sorted(CURVES))
    ap.add_argument("--tracking-uri", default="sqlite:///.bench_cache/mlflow-align.db")
    ap.add_argument("--out", default="leaderboards")
    a = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    client = mlflow.MlflowClient(a.tracking_uri)
    runs = finished_runs(client, a.suite)
    methods = list(dict.fromkeys(r.data.tags["bench.method"] for r in runs))
    names = CURVES[a.suite]
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5))
    means: dict[tuple[str, str], dict[int, float]] = {}
    colors = plt.get_cmap("tab20").colors
    for ax, name in zip(axes, names):
        ax.set_prop_cycle(color=colors[:max(len(methods), 1)])
        for m in methods:
            per_step = defaultdict(list)
            for r in runs:
                if r.data.tags["bench.method"] == m:
                    for p in client.get_metric_history(r.info.run_id, name):
                        per_step[p.step].append(p.value)
            means[(m, name)] = {s: statistics.mean(v) for s, v in per_step.items()}
            if per_step:
                steps = sorted(per_step)
                ax.plot(steps, [statistics.mean(per_step[s]) for s in steps], label=m,
                        marker="." if len(steps) < 30 else None)
        ax.set_xlabel("step")
        ax.set_ylabel(name + " (mean over seeds)")
        if name == "curve_kl_target":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{a.suite}: convergence per method")
    fig.tight_layout()
    out = Path(a.out) / f"{a.suite}_curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}\n")
    cols = TABLE[a.suite]
    print("| method | seeds | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for m in methods:
        rs = [r for r in runs if r.data.tags["bench.method"] == m]
        cells = [fmt([r.data.metrics[c] for r in rs if c in r.data.metrics]) for c in cols]
        print(f"| {m} | {len(rs)} | " + " | ".join(cells) + " |")
    name = names[0]
    steps = sorted({s for m in methods for s in means.get((m, name), {})})
    show = [s for s in steps if s in (0, 15, 30, 60, 90, 120, 150) or s == steps[-1]]
    print(f"\n{name}, mean over seeds, by step:\n")
    print("| method | " + " | ".join(f"step {s}" for s in show) + " |")
    print("|---|" + "---|" * len(show))
    for m in methods:
        cur = means.get((m, name), {})
        print(f"| {m} | " + " | ".join(f"{cur[s]:.3f}" if s in cur else "" for s in show) + " |")


if __name__ == "__main__":
    main()
