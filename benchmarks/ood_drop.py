"""OOD drop table (IID − OOD per method and shift) and the OOD claims, from an MLflow store.

    bench run suites/ood.yaml --tracking-uri sqlite:///.bench_cache/mlflow-ood.db
    bench leaderboard suites/ood.yaml --tracking-uri sqlite:///.bench_cache/mlflow-ood.db
    python benchmarks/ood_drop.py --tracking-uri sqlite:///.bench_cache/mlflow-ood.db \
        --append leaderboards/ood-notes.md

Datasets are paired by label: ``<shift>-ood`` with ``<shift>-iid`` (its IID twin with the
same split sizes). Means and stds are over seeds; the relative drop is (IID − OOD) / IID.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.leaderboard import experiment_runs  # noqa: E402

SHIFTS = {"pop": "popularity", "env": "environment (age ≥ 45)", "time": "temporal"}


def load(uri: str, suite: str, metric: str) -> tuple[dict, dict]:
    """{(method, dataset): [value per seed]} and {dataset: split diagnostics}."""
    client, runs = experiment_runs(uri, suite)
    values: dict = defaultdict(dict)
    diagnostics: dict = {}
    for r in runs:
        if metric in r.metrics:
            values[(r.method, r.dataset)][r.seed] = r.metrics[metric]
        if r.dataset not in diagnostics:
            try:
                path = client.download_artifacts(r.run_id, "split_diagnostics.json")
                diagnostics[r.dataset] = json.loads(Path(path).read_text())
            except Exception:  # an old run without the artifact: the table still works
                pass
    return {k: [v[seed] for seed in sorted(v)] for k, v in values.items()}, diagnostics


def seeds_by_pair(uri: str, suite: str, metric: str) -> dict:
    """{(method, dataset): {seed: value}}: the per-run values the drop tests pair by seed."""
    _, runs = experiment_runs(uri, suite)
    out: dict = defaultdict(dict)
    for r in runs:
        if metric in r.metrics:
            out[(r.method, r.dataset)][r.seed] = r.metrics[metric]
    return out


def drop_tests(per_seed: dict, shift: str, pairs: list[tuple[str, str]], alpha: float = 0.05
               ) -> list[str]:
    """Is one arm's relative drop (IID − OOD) / IID smaller than another's? Per training
    seed, both arms' drops from the same seed's IID and OOD runs, paired by seed
    (scipy's paired t-test), Holm over the pairs tested. Fewer than 3 common seeds: not
    testable here."""
    from scipy.stats import ttest_rel

    from harness.significance import holm

    rows, raw = [], []
    for method, than in pairs:
        def drops(m: str) -> dict:
            iid, ood = per_seed.get((m, f"{shift}-iid"), {}), per_seed.get((m, f"{shift}-ood"), {})
            return {s: (iid[s] - ood[s]) / iid[s] for s in iid.keys() & ood.keys() if iid[s]}
        a, b = drops(method), drops(than)
        seeds = sorted(a.keys() & b.keys())
        if len(seeds) < 3:
            rows.append((method, than, seeds, a, b, None))
            continue
        x, y = [a[s] for s in seeds], [b[s] for s in seeds]
        p = float(ttest_rel(x, y).pvalue) if any(u != v for u, v in zip(x, y)) else 1.0
        rows.append((method, than, seeds, a, b, p))
        raw.append(p)
    adjusted = iter(holm(raw)) if raw else iter(())
    out = []
    for method, than, seeds, a, b, p in rows:
        if p is None:
            out.append(f"- **not testable here**: {method}'s relative drop smaller than {than}'s "
                       f"({len(seeds)} common seeds)")
            continue
        p_holm = next(adjusted)
        da = statistics.mean(a[s] for s in seeds)
        db = statistics.mean(b[s] for s in seeds)
        verdict = "holds" if p_holm <= alpha and da < db else "does not hold"
        why = ("significantly reversed" if p_holm <= alpha and da > db
               else "difference not significant" if p_holm > alpha else "")
        out.append(f"- **{verdict}**: {method}'s relative drop smaller than {than}'s "
                   f"({100 * da:.1f}% vs {100 * db:.1f}% over {len(seeds)} seeds, paired by seed, "
                   f"Holm p = {p_holm:.3g}{'; ' + why if why else ''})")
    return out


def fmt(xs: list[float]) -> str:
    if not xs:
        return "–"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4f} ± {sd:.4f}"


def _sd(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def present_shifts(values: dict) -> list[str]:
    """The shifts with both an OOD split and its IID twin in the store."""
    datasets = {d for _, d in values}
    return [s for s in SHIFTS if f"{s}-ood" in datasets and f"{s}-iid" in datasets]


def drop_table(values: dict, metric: str) -> tuple[list[str], dict]:
    methods = list(dict.fromkeys(m for m, _ in values))
    shifts = present_shifts(values)
    lines = [f"| method | " + " | ".join(f"{SHIFTS[s]}: IID → OOD (drop, rel.)" for s in shifts) + " |",
             "|---|" + "---|" * len(shifts)]
    drops: dict = {}
    for m in methods:
        cells = []
        for s in shifts:
            iid, ood = values.get((m, f"{s}-iid"), []), values.get((m, f"{s}-ood"), [])
            if not iid or not ood:
                cells.append("–")
                continue
            mi, mo = statistics.mean(iid), statistics.mean(ood)
            drops[(m, s)] = (mi, mo, mi - mo, (mi - mo) / mi if mi else float("nan"), iid, ood)
            cells.append(f"{mi:.4f} → {mo:.4f} ({mi - mo:+.4f}, {100 * (mi - mo) / mi:.0f}%)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines, drops


def claims(drops: dict, metric: str) -> list[str]:
    out = []
    for s, name in SHIFTS.items():
        lg = drops.get(("lightgcn", s))
        cd = drops.get(("causaldiffrec", s))
        ab = drops.get(("causaldiffrec-noenv", s))
        if lg:
            holds = max(lg[5]) < min(lg[4])
            out.append(f"- **{name}: LightGCN OOD < IID** — {lg[0]:.4f} → {lg[1]:.4f} "
                       f"({100 * lg[3]:.0f}% drop); every OOD seed below every IID seed: "
                       f"{'holds' if holds else 'does not hold'}.")
        if lg and cd and lg[2] <= 0:
            out.append(f"- **{name}: CausalDiffRec shrinks the drop?** not applicable: LightGCN "
                       f"scores higher on the OOD split than on its IID twin here (OOD {metric} "
                       f"CausalDiffRec {cd[1]:.4f} vs LightGCN {lg[1]:.4f}).")
        elif lg and cd:
            out.append(f"- **{name}: CausalDiffRec shrinks the drop?** relative drop "
                       f"{100 * cd[3]:.0f}% vs LightGCN {100 * lg[3]:.0f}%; OOD {metric} "
                       f"{cd[1]:.4f} vs {lg[1]:.4f} → "
                       f"{'smaller drop' if cd[3] < lg[3] else 'not smaller'}, "
                       f"{'higher' if cd[1] > lg[1] else 'not higher'} OOD score.")
        if cd and ab:
            spread = _sd(ab[5]) + _sd(cd[5])
            if abs(ab[1] - cd[1]) <= spread:
                verdict = f"difference within the seeds' spread (±{spread:.4f}): no evidence either way"
            elif ab[1] < cd[1]:
                verdict = "ablation lower: the condition helps"
            else:
                verdict = "ablation higher: the condition does not help"
            out.append(f"- **{name}: ablation without the environment part** (no generator, "
                       f"no environment inference, e ≡ 0): OOD {ab[1]:.4f} vs full {cd[1]:.4f} ({verdict}).")
    return out


def representation_table(uri: str, suite: str) -> list[str]:
    """Per CausalDiffRec arm: representation updates per run and the outer loss after
    the first, middle and last representation epoch (mean over runs), so the board's
    readers see whether the fixed update budget had flattened the loss."""
    client, runs = experiment_runs(uri, suite)
    rows: dict = defaultdict(list)
    for r in runs:
        if "representation_updates" not in r.metrics:
            continue
        history = sorted((m.step, m.value) for m in client.get_metric_history(r.run_id, "rep_outer_loss"))
        if not history:
            continue
        mid = history[len(history) // 2 - 1] if len(history) > 1 else history[0]
        rows[(r.method, r.dataset)].append((r.metrics["representation_updates"], history[0][1],
                                            mid, history[-1], r.metrics.get("representation_seconds")))
    lines = ["| arm | split | runs | updates per run | outer loss: epoch 1 → middle → last | rep. stage wall s |",
             "|---|---|---|---|---|---|"]
    for (method, dataset), vals in sorted(rows.items()):
        ups = sorted({int(v[0]) for v in vals})
        first = statistics.mean(v[1] for v in vals)
        mid = statistics.mean(v[2][1] for v in vals)
        last = statistics.mean(v[3][1] for v in vals)
        wall = [v[4] for v in vals if v[4] is not None]
        wall_s = f"{statistics.mean(wall):.0f}" if wall else "–"
        lines.append(f"| {method} | {dataset} | {len(vals)} | {', '.join(map(str, ups))} | "
                     f"{first:.4f} → {mid:.4f} (epoch {vals[0][2][0] + 1}) → {last:.4f} "
                     f"(epoch {vals[0][3][0] + 1}) | {wall_s} |")
    return lines


def diagnostics_table(diag: dict) -> list[str]:
    cols = ["n_train", "n_valid", "n_test", "test_users", "test_events_per_user", "test_item_gini",
            "train_item_gini", "test_pop_max_over_median", "test_mean_train_pop"]
    lines = ["| split | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for s in SHIFTS:
        for kind in ("ood", "iid"):
            d = diag.get(f"{s}-{kind}")
            if d:
                d = dict(d, test_events_per_user=d["n_test"] / max(d["test_users"], 1))
                vals = [f"{d[c]:.3f}" if isinstance(d.get(c), float) else str(d.get(c, "–")) for c in cols]
                lines.append(f"| {s}-{kind} | " + " | ".join(vals) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", default="sqlite:///.bench_cache/mlflow-ood.db")
    ap.add_argument("--suite", default="ood")
    ap.add_argument("--metric", default="ndcg@20")
    ap.add_argument("--append", type=Path, help="append the section to this markdown file")
    args = ap.parse_args()
    text = []
    for metric in dict.fromkeys([args.metric, "recall@20"]):
        values, diag = load(args.tracking_uri, args.suite, metric)
        lines, drops = drop_table(values, metric)
        text += [f"\n## OOD drop, {metric} (mean over seeds; IID twin → OOD split)\n",
                 "Written by `python benchmarks/ood_drop.py --tracking-uri "
                 f"{args.tracking_uri} --metric {metric}`.\n", *lines]
        text += ["", f"### Claims checked ({metric})", *claims(drops, metric)]
        per_seed = seeds_by_pair(args.tracking_uri, args.suite, metric)
        for shift in present_shifts(values):
            text += ["", f"### Drop tests over training seeds ({SHIFTS[shift]}, {metric})",
                     *drop_tests(per_seed, shift, [("causaldiffrec", "lightgcn"),
                                                   ("causaldiffrec", "causaldiffrec-noenv")])]
    text += ["\n## CausalDiffRec's representation stage\n", *representation_table(args.tracking_uri, args.suite)]
    text += ["\n## Split diagnostics (from split_diagnostics.json)\n", *diagnostics_table(diag)]
    out = "\n".join(text) + "\n"
    if args.append:
        with args.append.open("a") as f:
            f.write(out)
    print(out)


if __name__ == "__main__":
    main()
