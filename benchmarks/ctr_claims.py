"""The ctr suite's claims, judged from the finished runs in its MLflow store with the
harness's claim judge (seed-level paired t-test over training runs, all claims one Holm
family, an arm still improving at its epoch budget makes a claim not testable).

Test AUC is one number per run (a global ranking statistic, no per-user split), so each
run contributes its AUC as its seed value; UAUC/log loss use the run's per-user mean,
which is the same number. Warm vs cold is a within-arm claim: the arm's warm and cold
AUCs of the same seed are paired. The perplexity claim is also judged on ln(ppl_after / ppl_base) per run (derived here from
the logged perplexities), because the raw drift of a merged LoRA varies by an order of
magnitude across seeds. Prints a markdown section for leaderboards/ctr-notes.md.

    python benchmarks/ctr_claims.py --tracking-uri sqlite:///.bench_cache/mlflow-ctr.db
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.claims import Claim, judge, render  # noqa: E402
from harness.leaderboard.runs import experiment_runs, mean_std  # noqa: E402
from harness.registry import Registry  # noqa: E402
from harness.suite import load_suite  # noqa: E402

TABLE = ["auc", "uauc", "logloss", "auc_warm", "auc_cold", "uauc_warm", "ppl_base", "ppl_after",
         "ppl_log_ratio",
         "llm_weights_changed", "best_epoch", "epochs_run", "epoch_budget", "train_seconds"]
PSEUDO = {"warm": "auc_warm", "cold": "auc_cold"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracking-uri", default="sqlite:///.bench_cache/mlflow-ctr.db")
    ap.add_argument("--suite", default="suites/ctr.yaml")
    args = ap.parse_args()
    suite, _ = load_suite(Path(args.suite), Registry())
    _, runs = experiment_runs(args.tracking_uri, suite.suite)
    by_method: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for r in runs:
        by_method[r.method][r.seed] = r.metrics
    order = [m.key for m in suite.methods]

    per_seed: dict[str, dict[str, dict[str, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    still_improving: dict[str, int] = {}
    for method, seeds in by_method.items():
        still_improving[method] = sum(v.get("still_improving", 0.0) > 0 for v in seeds.values())
        for seed, v in seeds.items():
            for metric in suite.metrics:
                if metric in v:
                    per_seed[method][metric][seed] = {"run": v[metric]}
            if v.get("ppl_base") and v.get("ppl_after"):
                v["ppl_log_ratio"] = math.log(v["ppl_after"] / v["ppl_base"])
                per_seed[method]["ppl_log_ratio"][seed] = {"run": v["ppl_log_ratio"]}
            for name, metric in PSEUDO.items():  # within-arm warm vs cold
                if metric in v:
                    per_seed[f"{method}:{name}"]["auc_subset"][seed] = {"run": v[metric]}
                    still_improving[f"{method}:{name}"] = still_improving[method]

    claims = list(suite.claims) + [
        Claim(text="CoRA preserves the LLM: held-out perplexity drifts less than with TALLRec's "
                   "merged LoRA, on the log scale ln(ppl_after/ppl_base)", method="cora",
              than="tallrec", metric="ppl_log_ratio", direction="lower"),
        Claim(text="the CF signal works on warm pairs: CoRA's AUC on warm pairs exceeds its AUC "
                   "on cold pairs", method="cora:warm", than="cora:cold", metric="auc_subset")]
    verdicts = judge(claims, per_seed, still_improving)

    out = ["## Claims checked (test split, mean ± std over seeds)", "",
           f"`python benchmarks/ctr_claims.py --tracking-uri {args.tracking_uri}`", ""]
    head = ["method", "seeds", *TABLE, "still improving at budget"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in order + sorted(set(by_method) - set(order)):
        if m not in by_method:
            continue
        seeds = by_method[m]
        cells = [mean_std([v[k] for v in seeds.values() if k in v], 4 if k not in
                          ("best_epoch", "epochs_run", "epoch_budget", "train_seconds") else 1) for k in TABLE]
        out.append("| " + " | ".join([m, str(len(seeds)), *cells, str(still_improving.get(m, 0))]) + " |")
    out += [""] + render(verdicts)
    print("\n".join(out))


if __name__ == "__main__":
    main()
