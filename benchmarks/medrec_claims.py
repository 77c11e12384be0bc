"""The medrec suite's claims, judged from the finished runs in its MLflow store.

Every claim is one comparison of two arms on one dataset and metric. Two tests, each
Holm-corrected over the whole family of claims:

* the harness's claim judge (:func:`harness.claims.judge`): a paired t-test over training
  runs (seeds), an arm still improving at its epoch budget makes a claim not testable;
* the hierarchical bootstrap over seeds and test samples
  (:func:`harness.significance.hierarchical_bootstrap`).

"What the permuted control does to HIER's edge" compares HIER − flat per test sample on
the aligned data with the same difference on the permuted data: the permuted dataset has
the same patients, visits, drugs and split (only the codes are relabelled), so samples
pair across the two conditions.

    python benchmarks/medrec_claims.py --tracking-uri sqlite:///mlflow-medrec.db
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.claims import Claim, judge, render  # noqa: E402
from harness.leaderboard.runs import experiment_runs, load_per_user, mean_std  # noqa: E402
from harness.registry import Registry  # noqa: E402
from harness.significance import hierarchical_bootstrap, holm  # noqa: E402
from harness.suite import load_suite  # noqa: E402

ALIGNED, PERMUTED = "synth-aligned", "synth-permuted"
TABLE = ["jaccard", "prauc", "jaccard_rare", "prauc_rare", "jaccard_unseen", "prauc_unseen",
         "ddi_rate", "avg_med", "best_epoch", "epochs_run", "train_seconds"]


def claims() -> list[Claim]:
    out = []
    for metric in ("jaccard", "prauc", "jaccard_rare", "prauc_rare", "jaccard_unseen",
                   "prauc_unseen"):
        out.append(Claim(text=f"HIER beats the flat embedding ({metric}, aligned hierarchy)",
                         method=f"hier@{ALIGNED}", than=f"flat@{ALIGNED}", metric=metric))
    out.append(Claim(text="HIER does not raise the DDI rate (aligned)", method=f"hier@{ALIGNED}",
                     than=f"flat@{ALIGNED}", metric="ddi_rate", direction="lower"))
    for metric in ("jaccard", "prauc", "jaccard_rare", "jaccard_unseen"):
        out.append(Claim(text=f"HIER beats the learned-ancestor baseline ({metric}, aligned)",
                         method=f"hier@{ALIGNED}", than=f"flat_anc@{ALIGNED}", metric=metric))
    for metric in ("jaccard", "jaccard_rare"):
        out.append(Claim(text=f"HIER beats flat on the permuted control ({metric})",
                         method=f"hier@{PERMUTED}", than=f"flat@{PERMUTED}", metric=metric))
        out.append(Claim(text=f"the permuted control shrinks HIER's edge over flat ({metric}: "
                              "(HIER − flat) aligned > (HIER − flat) permuted, paired samples)",
                         method=f"edge@{ALIGNED}", than=f"edge@{PERMUTED}", metric=metric))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracking-uri", default="sqlite:///mlflow-medrec.db")
    ap.add_argument("--suite", default="suites/medrec.yaml")
    args = ap.parse_args()
    suite, _ = load_suite(Path(args.suite), Registry())
    client, runs = experiment_runs(args.tracking_uri, suite.suite)
    per_seed: dict = defaultdict(lambda: defaultdict(dict))
    summary: dict = defaultdict(lambda: defaultdict(list))
    flagged: dict[str, int] = defaultdict(int)
    for r in runs:
        arm = f"{r.method}@{r.dataset}"
        per_user = load_per_user(client, r.run_id) or {}
        for metric in TABLE:
            if metric in r.metrics:
                summary[arm][metric].append(r.metrics[metric])
        for metric in suite.metrics:
            if metric in per_user:
                per_seed[arm][metric][r.seed] = per_user[metric]
            elif metric in r.metrics:  # pooled metrics (DDI rate): one value per run
                per_seed[arm][metric][r.seed] = {"run": r.metrics[metric]}
        flagged[arm] += int(r.metrics.get("still_improving", 0) > 0)
    for ds in (ALIGNED, PERMUTED):  # HIER − flat per sample, paired by seed
        hier, flat = per_seed.get(f"hier@{ds}", {}), per_seed.get(f"flat@{ds}", {})
        for metric in set(hier) & set(flat):
            for seed in set(hier[metric]) & set(flat[metric]):
                h, f = hier[metric][seed], flat[metric][seed]
                per_seed[f"edge@{ds}"][metric][seed] = {u: h[u] - f[u] for u in set(h) & set(f)}
        flagged[f"edge@{ds}"] = flagged[f"hier@{ds}"] + flagged[f"flat@{ds}"]

    family = claims()
    verdicts = judge(family, per_seed, flagged)
    boot = []
    for c in family:
        a, b = per_seed.get(c.method, {}).get(c.metric), per_seed.get(c.than, {}).get(c.metric)
        boot.append(hierarchical_bootstrap(b, a) if a and b else float("nan"))
    tested = [i for i, p in enumerate(boot) if not math.isnan(p)]
    boot_holm = dict(zip(tested, holm([boot[i] for i in tested])))

    out = ["## Arms (test split, mean ± std over seeds)", "",
           f"`python benchmarks/medrec_claims.py --tracking-uri {args.tracking_uri}`", ""]
    head = ["arm", "seeds", *TABLE, "still improving"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = [f"{m.key}@{d.key}" for d in suite.datasets for m in suite.methods]
    for arm in order:
        if arm not in summary:
            continue
        cells = [mean_std(summary[arm][k], 4 if k not in ("best_epoch", "epochs_run",
                                                          "train_seconds") else 1) for k in TABLE]
        n = max(len(v) for v in summary[arm].values())
        out.append("| " + " | ".join([arm, str(n), *cells, str(flagged[arm])]) + " |")
    out += [""] + render(verdicts)
    out += ["Hierarchical bootstrap over seeds and test samples (10,000 replicates), Holm over "
            "the same family:", "", "| claim | Δ | bootstrap p (Holm) |", "|---|---|---|"]
    for i, (c, v) in enumerate(zip(family, verdicts)):
        p = boot_holm.get(i, float("nan"))
        out.append(f"| {c.text} | {v.delta:+.4f} | {p:.3g} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
