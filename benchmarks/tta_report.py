"""TTA4SR analysis of a finished `suites/tta.yaml` run: per backbone, each operator against
that backbone's own no-TTA row (relative change, paired t-test over training seeds,
Holm-corrected), the setting validation chose, its inference overhead, and NDCG@10 by
history length.

    python benchmarks/tta_report.py --tracking-uri sqlite:///.bench_cache/mlflow-tta.db \
        [--suite suites/tta.yaml] [--out leaderboards/tta-analysis.md]

Method labels are `<backbone>` and `<backbone>+<operator>`; every operator is compared with
its own backbone (as the suite's per-method `baseline:` does on the leaderboard). Overhead: `tta_seconds` / `notta_seconds` are the fastest of
`timing_repeats` timings of the same work inside one cell (the machine is shared, so
seconds are noisy); `passes/user` counts encoder passes and does not depend on load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from harness.leaderboard import experiment_runs, load_per_user, mean_std as fmt  # noqa: E402
from harness.leaderboard.aggregate import Row, selected_text  # noqa: E402
from harness.significance import compare_runs  # noqa: E402

METRICS = ("ndcg@10", "hit_rate@10")
BUCKETS = ("le50", "le150", "gt150")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", default="sqlite:///.bench_cache/mlflow-tta.db")
    ap.add_argument("--experiment", default="tta")
    ap.add_argument("--out", default="leaderboards/tta-analysis.md")
    args = ap.parse_args()

    client, runs = experiment_runs(args.tracking_uri, args.experiment)
    by_method: dict[str, list] = defaultdict(list)
    for r in runs:
        by_method[r.method].append(r)
    backbones = [m for m in by_method if "+" not in m]
    cmd = " ".join(["python benchmarks/tta_report.py", *sys.argv[1:]])
    lines = [f"`{cmd}`", "", "# TTA4SR analysis: each operator vs its own backbone without TTA", "",
             "Test split, mean ± std over the suite's seeds (each seed trains its own backbone). "
             "Δ = relative change of the mean against the backbone's no-TTA row; p = two-sided "
             "paired t-test over training seeds (runs paired by seed), Holm-corrected per "
             "backbone and metric. chosen = the setting each run picked on validation (runs). "
             "Overhead: fastest of the cell's repeated timings (wall, shared machine); passes = "
             "encoder forward passes per user.", ""]
    for bb in backbones:
        ops = sorted([m for m in by_method if m.startswith(bb + "+")])
        names = [bb, *ops]
        per_seed: dict = {}
        for name in names:
            loaded = {r.seed: load_per_user(client, r.run_id) for r in by_method[name]}
            if all(p is not None for p in loaded.values()):
                per_seed[name] = {m: {s: p[m] for s, p in loaded.items()} for m in METRICS}
        comps = {(c.method, c.metric): c
                 for c in compare_runs(per_seed, {n: bb for n in ops}, METRICS, unit="seeds")}
        base = {m: statistics.fmean(r.metrics[m] for r in by_method[bb]) for m in METRICS}
        lines += [f"## {bb}", "",
                  "| operator | NDCG@10 | Δ | p | HR@10 | Δ | p | chosen | passes | TTA s | "
                  "no-TTA s | overhead × | similarity s | seeds |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name in names:
            rs = by_method[name]
            row = [name.split("+", 1)[1] if "+" in name else "none"]
            for m in METRICS:
                vals = [r.metrics[m] for r in rs if m in r.metrics]
                row.append(fmt(vals))
                if name == bb:
                    row += ["–", "–"]
                    continue
                delta = statistics.fmean(vals) / base[m] - 1
                c = comps.get((name, m))
                row += [f"{delta:+.1%}", "–" if c is None or c.p_holm != c.p_holm
                        else f"{c.p_holm:.2g}"]
            g = lambda k: [r.metrics[k] for r in rs if k in r.metrics]  # noqa: E731
            row += [selected_text(Row(name, rs)), fmt(g("tta_passes_per_user"), 0), fmt(g("tta_seconds"), 2),
                    fmt(g("notta_seconds"), 2), fmt(g("tta_overhead_ratio"), 1),
                    fmt(g("tta_similarity_seconds"), 2), str(len(rs))]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", f"NDCG@10 by history length ({bb}; users per bucket in the header):", ""]
        users = {b: by_method[bb][0].metrics.get(f"bucket_{b}_users", 0) for b in BUCKETS}
        lines += ["| operator | " + " | ".join(f"{b} (n={int(users[b])})" for b in BUCKETS) + " |",
                  "|---|" + "---|" * len(BUCKETS)]
        for name in names:
            cells = []
            for b in BUCKETS:
                vals = [r.metrics[f"bucket_{b}_ndcg10"] for r in by_method[name]
                        if f"bucket_{b}_ndcg10" in r.metrics]
                cells.append(fmt(vals))
            lines.append(f"| {name.split('+', 1)[1] if '+' in name else 'none'} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
