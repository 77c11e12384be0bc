"""The signed suite's claims, checked from the finished runs in its MLflow store: accuracy
and negative-hit metrics per method, training cost per epoch, and per-seed differences
of LSGRec against each baseline and ablation. Prints a markdown section (appended to
leaderboards/signed-notes.md, the hand-written analysis).

    python benchmarks/signed_claims.py --tracking-uri sqlite:///.bench_cache/mlflow-signed.db
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.leaderboard import experiment_runs, mean_std as _fmt  # noqa: E402

METRICS = ["ndcg@20", "recall@20", "neg_hit_rate@20", "neg_precision@20"]
COST = ["seconds_per_epoch", "epochs_run", "best_epoch", "train_seconds"]
REF = "lsgrec"
OTHERS = ["lightgcn-pos-only", "siren", "lsgrec-no-high-order-neg", "lsgrec-no-neg-loss"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracking-uri", default="sqlite:///.bench_cache/mlflow-signed.db")
    ap.add_argument("--experiment", default="signed")
    args = ap.parse_args()
    _, runs = experiment_runs(args.tracking_uri, args.experiment)
    by_method: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for r in runs:  # the latest finished run per (method, seed)
        by_method[r.method][r.seed] = r.metrics
    order = ["pop", "lightgcn-pos-only", "siren", "lsgrec", "lsgrec-no-high-order-neg",
             "lsgrec-no-neg-loss"]
    methods = [m for m in order if m in by_method] + sorted(set(by_method) - set(order))

    out = ["## Claims checked (test split, mean ± std over seeds)", "",
           f"`python benchmarks/signed_claims.py --tracking-uri {args.tracking_uri}`", ""]
    head = ["method", "seeds", *METRICS, "s/epoch",
            "epochs run", "best epoch"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        seeds = by_method[m]
        col = lambda k, d=4: _fmt([v[k] for v in seeds.values() if k in v], d)  # noqa: E731
        out.append("| " + " | ".join([m, str(len(seeds)), *[col(k) for k in METRICS],
                                      col("seconds_per_epoch", 2), col("epochs_run", 1),
                                      col("best_epoch", 1)]) + " |")
    out.append("")
    if REF in by_method:
        out += [f"Per-seed differences {REF} − other (same seed, same split); "
                "wins = seeds where LSGRec is better (higher NDCG/Recall, lower neg-hit):", "",
                "| other | ΔNDCG@20 | wins | ΔRecall@20 | wins | Δneg_hit_rate@20 | wins | time/epoch ratio |",
                "|---|---|---|---|---|---|---|---|"]
        ref = by_method[REF]
        for other in OTHERS:
            if other not in by_method:
                continue
            common = sorted(set(ref) & set(by_method[other]))
            cells = [other]
            for k, sign in (("ndcg@20", 1), ("recall@20", 1), ("neg_hit_rate@20", -1)):
                d = [ref[s][k] - by_method[other][s][k] for s in common]
                cells += [_fmt(d), f"{sum(sign * x > 0 for x in d)}/{len(d)}"]
            ratio = [ref[s]["seconds_per_epoch"] / by_method[other][s]["seconds_per_epoch"]
                     for s in common]
            cells.append(_fmt(ratio, 2) + "x")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
