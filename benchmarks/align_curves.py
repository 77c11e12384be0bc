"""Convergence plots and summary figures for the alignment suites, read from MLflow.

    python benchmarks/align_curves.py preference --tracking-uri sqlite:///.bench_cache/mlflow-align.db
    python benchmarks/align_curves.py reasoning  --tracking-uri sqlite:///.bench_cache/mlflow-reasoning.db
    python benchmarks/align_curves.py reasoning-ablations \
        --tracking-uri sqlite:///.bench_cache/mlflow-reasoning-ablations.db

Writes leaderboards/<suite>_curves.png (metric vs step, mean over seeds, one line per
method; per-step training metrics smoothed over a 20-step window; a preference run that
stopped early is held at its last value) and prints a markdown
table of final metrics as mean ± std over seeds (the std is one stability figure), plus
accuracy by difficulty and, for reasoning suites, the max drawdown of the validation
curve (the suite's valid metric; largest drop below its running best, mean over seeds:
the other one). With early stopping a run's curve ends where it stopped; a step's mean is
over the runs that reached it. Runs that logged the KL to their start at each validation
(``valid_kl_init``: sampled validation, since 2026-12-03) get its curve and a by-step
table too: the KL of arms at equal rollout batches, which the final ``kl_init`` of
early-stopped runs is not.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.leaderboard import experiment_runs, mean_std  # noqa: E402
from plugins.trpa import max_drawdown  # noqa: E402  (the figure the cells log as valid_drawdown)

CURVES = {"preference": ["curve_kl_target", "curve_expected_reward"],
          "reasoning": ["valid_accuracy", "train_level_1", "train_reward"]}
TABLE = {"preference": ["kl_target", "expected_reward", "target_reward", "kl_ref", "steps_run",
                        "steps_to_kl", "cpu_seconds_run", "stopped_threshold", "stopped_plateau"],
         "reasoning": ["accuracy", "accuracy_d2", "accuracy_d3", "accuracy_sampled",
                       "format_valid", "mean_reward", "kl_init", "reward_gap"]}


def kind_of(suite: str) -> str:
    """'reasoning-ablations' -> 'reasoning': the metric set comes from the task."""
    for kind in CURVES:
        if suite == kind or suite.startswith(kind + "-"):
            return kind
    raise SystemExit(f"unknown suite '{suite}': expected one of {sorted(CURVES)} (or NAME-*)")


def valid_curve(runs) -> str:
    """The validation curve the runs logged: ``valid_<the suite's valid_metric>``
    (sampled accuracy on the arithmetic and K&K suites, greedy accuracy on older runs)."""
    logged = {k for r in runs for k in r.metrics}
    return next((k for k in ("valid_accuracy_sampled", "valid_accuracy") if k in logged),
                "valid_accuracy")


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (per-step training metrics are one batch each: noisy)."""
    out = []
    for k in range(len(values)):
        chunk = values[max(0, k - window + 1): k + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def hold_last(curve: dict[int, float], grid: list[int]) -> dict[int, float]:
    """The curve on every step of ``grid`` from its first step on, holding its last value
    after it ends (so the mean over seeds of early-stopped runs is not a mean over the
    seeds still running)."""
    out, last = {}, None
    for s in grid:
        last = curve.get(s, last)
        if last is not None:
            out[s] = last
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", help="suite name: preference, reasoning, or reasoning-*")
    ap.add_argument("--tracking-uri", default="sqlite:///.bench_cache/mlflow-align.db")
    ap.add_argument("--out", default="leaderboards")
    ap.add_argument("--baseline", help="method the others are tested against at equal "
                    "batches (default: the first method of the store)")
    a = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    client, runs = experiment_runs(a.tracking_uri, a.suite)

    @functools.lru_cache(maxsize=None)
    def history(run_id: str, name: str) -> dict[int, float]:
        """A run's logged curve {step: value}, read from the store once (the plot, the
        drawdown column and the equal-batches table all use it)."""
        return {p.step: p.value for p in client.get_metric_history(run_id, name)}

    methods = list(dict.fromkeys(r.method for r in runs))
    kind = kind_of(a.suite)
    valid = valid_curve(runs)
    names = [valid if n == "valid_accuracy" else n for n in CURVES[kind]]
    if any("valid_kl_init" in r.metrics for r in runs):  # the KL to the start, per evaluation
        names.insert(1, "valid_kl_init")
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5))
    means: dict[tuple[str, str], dict[int, float]] = {}
    colors = plt.get_cmap("tab20").colors
    for ax, name in zip(axes, names):
        ax.set_prop_cycle(color=colors[:max(len(methods), 1)])
        for m in methods:
            per_step = defaultdict(list)
            curves = [history(r.run_id, name) for r in runs if r.method == m]
            if kind == "preference":  # an early-stopped run stays where it stopped
                grid = sorted({s for c in curves for s in c})
                curves = [hold_last(c, grid) for c in curves if c]
            for c in curves:
                for step, value in c.items():
                    per_step[step].append(value)
            means[(m, name)] = {s: statistics.mean(v) for s, v in per_step.items()}
            if per_step:
                steps = sorted(per_step)
                ys = [statistics.mean(per_step[s]) for s in steps]
                if len(steps) >= 60:
                    ys = smooth(ys, 20)
                ax.plot(steps, ys, label=m, marker="." if len(steps) < 30 else None)
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
    cols = TABLE[kind]
    extra = ["valid max drawdown"] if kind == "reasoning" else ["chosen"]
    print("| method | seeds | " + " | ".join(cols + extra) + " |")
    print("|---|---|" + "---|" * len(cols + extra))
    for m in methods:
        rs = [r for r in runs if r.method == m]
        cells = [mean_std([r.metrics[c] for r in rs if c in r.metrics], 3, "n/a") for c in cols]
        if kind == "preference":  # the tuned values the runs used (the board shows them too)
            cells.append(", ".join(sorted({r.tags.get("bench.tuned_params", "–") for r in rs})))
        elif extra:
            cells.append(mean_std([max_drawdown([v for _, v in sorted(
                history(r.run_id, valid).items())]) for r in rs], 3, "n/a"))
        print(f"| {m} | {len(rs)} | " + " | ".join(cells) + " |")
    # the validation curve, and the KL to the start at equal rollout batches when logged
    for name in [n for n in names if n == names[0] or n == "valid_kl_init"]:
        steps = sorted({s for m in methods for s in means.get((m, name), {})})
        stride = max(1, len(steps) // 7)
        show = [s for k, s in enumerate(steps) if k % stride == 0 or s == steps[-1]]
        print(f"\n{name}, mean over seeds (of the runs that reached the step), by step:\n")
        print("| method | " + " | ".join(f"step {s}" for s in show) + " |")
        print("|---|" + "---|" * len(show))
        for m in methods:
            cur = means.get((m, name), {})
            print(f"| {m} | " + " | ".join(f"{cur[s]:.3f}" if s in cur else "" for s in show)
                  + " |")
    if "valid_kl_init" in names:
        at_equal_batches(history, runs, methods, "valid_kl_init", a.baseline or methods[0])


def at_equal_batches(history, runs, methods: list[str], name: str, baseline: str) -> None:
    """``name`` at the last evaluation every run reached (early stopping ends runs at
    different lengths; this compares them at the same rollout batches): mean ± std over
    seeds per method, and each method against ``baseline`` by the seed-paired t-test,
    Holm-corrected over the methods."""
    from harness.significance import holm, seed_paired_test

    curves = {(r.method, r.seed): history(r.run_id, name) for r in runs}
    if not curves or not all(curves.values()):
        return
    step = min(max(c) for c in curves.values())
    if any(step not in c for c in curves.values()):
        return  # the runs were not evaluated on one common grid
    value = {m: {seed: c[step] for (mm, seed), c in curves.items() if mm == m} for m in methods}
    raw = {m: seed_paired_test(value[baseline], value[m]) for m in methods if m != baseline}
    tested = [m for m, p in raw.items() if p == p]  # nan: too few shared seeds
    adjusted = dict(zip(tested, holm([raw[m] for m in tested]))) if tested else {}
    print(f"\n{name} at rollout batch {step}, the last evaluation every run reached "
          f"(mean ± std over seeds; seed-paired t-test against {baseline}, Holm over "
          f"{len(tested)} comparison(s)):\n")
    print("| method | seeds | value | Δ vs baseline | Holm p |")
    print("|---|---|---|---|---|")
    for m in methods:
        v = value[m]
        cells = [m, str(len(v)), mean_std(list(v.values()), 3, "n/a")]
        if m == baseline:
            cells += ["–", "–"]
        else:
            shared = sorted(set(v) & set(value[baseline]))
            delta = (statistics.mean(v[s] - value[baseline][s] for s in shared) if shared
                     else float("nan"))
            cells += [f"{delta:+.3f}", f"{adjusted[m]:.3g}" if m in adjusted else "n/a"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
