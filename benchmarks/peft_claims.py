"""The peft suite's claims, checked from the finished runs in its MLflow store: per-task and
mean score per arm, spread across tasks and across seeds, seconds per step and input
length at equal trainable-parameter count, and what each EPT ablation costs (per-seed
differences). Prints a markdown section for leaderboards/peft-notes.md.

    python benchmarks/peft_claims.py --tracking-uri sqlite:///mlflow-peft.db
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.leaderboard import experiment_runs, mean_std as _fmt  # noqa: E402

ORDER = ["pt_long", "pt_short", "dept", "ept", "ept_no_fusion", "ept_no_multispace", "lora",
         "full_ft"]
#: (treatment, control, what the difference measures)
PAIRS = [("ept", "ept_no_fusion", "cost of removing prompt fusion"),
         ("ept", "ept_no_multispace", "cost of removing the multi-space projection"),
         ("ept", "dept", "EPT's modules over DePT at equal parameters"),
         ("dept", "pt_short", "DePT's low-rank update over its own short prompt"),
         ("dept", "pt_long", "DePT vs vanilla prompt tuning at equal parameters"),
         ("ept", "pt_long", "EPT vs vanilla prompt tuning at equal parameters"),
         ("ept", "lora", "EPT vs LoRA at equal parameters")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracking-uri", default="sqlite:///mlflow-peft.db")
    ap.add_argument("--experiment", default="peft")
    ap.add_argument("--max-steps", type=int, default=800, help="the suite's per-task budget")
    ap.add_argument("--eval-every", type=int, default=25)
    args = ap.parse_args()
    _, runs = experiment_runs(args.tracking_uri, args.experiment)
    by: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for r in runs:
        by[r.method][r.seed] = r.metrics
    methods = [m for m in ORDER if m in by] + sorted(set(by) - set(ORDER))
    tasks = sorted({k[:-len("_score")] for v in by[methods[0]].values() for k in v
                    if k.endswith("_score") and k != "mean_score" and not k.startswith("valid_")})

    def col(m: str, k: str, d: int = 4) -> str:
        return _fmt([v[k] for v in by[m].values() if k in v], d)

    out = ["## Claims checked (test split, mean ± std over seeds)", "",
           f"`python benchmarks/peft_claims.py --tracking-uri {args.tracking_uri}`", "",
           "Task score = the mean of the task's GLUE metrics; mean = mean over tasks; "
           "task spread = std of the task scores within a run (mean over seeds).", ""]
    head = ["arm", "seeds", *tasks, "mean", "task spread", "params/task", "ms/step",
            "input tokens", "tasks early-stopped", "best step (mean)"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        out.append("| " + " | ".join(
            [m, str(len(by[m])), *[col(m, f"{t}_score") for t in tasks], col(m, "mean_score"),
             col(m, "task_std"), col(m, "params_trainable", 0),
             _fmt([v["sec_per_step"] * 1000 for v in by[m].values() if "sec_per_step" in v], 1),
             col(m, "input_tokens", 1), col(m, "tasks_converged", 2),
             col(m, "best_step_mean", 0)]) + " |")
    out += ["", "Per-seed differences of mean_score (same seed, same data and backbone); "
            "wins = seeds where the first arm is higher; step-time ratio = first / second:", "",
            "| first − second | what it measures | Δ mean_score | wins | ms/step ratio |",
            "|---|---|---|---|---|"]
    for a, b, what in PAIRS:
        if a not in by or b not in by:
            continue
        common = sorted(set(by[a]) & set(by[b]))
        d = [by[a][s]["mean_score"] - by[b][s]["mean_score"] for s in common]
        wins = sum(x > 0 for x in d)
        ratio = (statistics.fmean(by[a][s]["sec_per_step"] for s in common)
                 / statistics.fmean(by[b][s]["sec_per_step"] for s in common))
        out.append(f"| {a} − {b} | {what} | {_fmt(d, 4)} | {wins}/{len(d)} | {ratio:.2f} |")
    # a best step in the last evaluation window = training stopped by the budget, not by
    # early stopping: the budget was too small for that task training
    limited = [f"{m} seed {seed} {t}" for m in methods for seed, v in sorted(by[m].items())
               for t in tasks if v.get(f"{t}_best_step", 0) >= args.max_steps - args.eval_every]
    out += ["", f"Task trainings whose best validation step fell in the last evaluation window "
            f"of the {args.max_steps}-step budget: {len(limited)} of "
            f"{sum(len(by[m]) for m in methods) * len(tasks)}"
            + (f" ({'; '.join(limited)})." if limited else ".")]
    print("\n".join(out))


if __name__ == "__main__":
    main()
