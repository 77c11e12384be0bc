"""Scale-out: one grid run sequentially, with ``--jobs 2`` and on a local Ray with 2 CPUs,
in one process, one after another: wall-time ratios and whether every metric is identical.

    OMP_NUM_THREADS=1 python benchmarks/scaleout.py            # 10 cells of ~2.7 s on ml-100k
    OMP_NUM_THREADS=1 python benchmarks/scaleout.py --scale 2  # cells 2x as long
    OMP_NUM_THREADS=1 python benchmarks/scaleout.py --modes cli-sequential,cli-jobs2

The grid's two methods have cells of about the same length (BPR-MF 30 epochs, LightGCN
12), so the ratio does not depend on which cell lands on which core last.

The ``cli-*`` modes time the whole ``bench run GRID -q [--jobs 2]`` command as a user
runs it (a new process: interpreter start, imports, the registry, then the grid), so the
driver's own start-up is in both numbers and ``--jobs``'s prestarted worker (spawned at
the top of ``bench run``) can overlap it; they are compared with ``cli-sequential``. The
in-process modes (``sequential``, ``jobs2``, ``ray2``) call ``run_suite`` in this
process, whose imports are already paid, so they time the grid alone.

Every mode writes to its own new SQLite store under a temporary folder and starts from the
same warm split cache (the split is made before the first timing), so the wall times
include what a user pays: worker start-up (spawned processes import torch, MLflow and
the plugins; Ray starts its local cluster) and logging. Each worker runs one torch
thread, as the sequential run does (``OMP_NUM_THREADS=1``). The machine is shared: quote
the ratios of one run, not its seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRID = {
    "suite": "scaleout-bench",
    "datasets": [{"name": "ml-100k", "split": {"strategy": "random_ratio",
                                               "ratios": [0.8, 0.1, 0.1], "seed": 2020}}],
    "methods": [{"name": "bpr_mf", "params": {"dim": 32, "epochs": 30, "patience": 30,
                                              "lr": 0.005, "batch_size": 2048}},
                {"name": "lightgcn", "params": {"dim": 32, "epochs": 12, "patience": 12,
                                                "lr": 0.005, "batch_size": 2048}}],
    "seeds": [0, 1, 2, 3, 4],
    "metrics": ["ndcg@10", "recall@20"],
}


def _load(tmp: Path):
    import yaml

    from harness.registry import Registry
    from harness.suite import load_suite

    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump(GRID))
    registry = Registry()
    suite, cells = load_suite(path, registry)
    return suite, cells, registry


def _store_metrics(uri: str) -> list:
    """(method, seed, sorted ranking metrics) of every finished cell run in a store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(GRID["suite"])
    rows = []
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        if r.data.tags.get("bench.status") == "finished" and "bench.method" in r.data.tags:
            rows.append((r.data.tags["bench.method"], r.data.tags["bench.seed"],
                         sorted((k, v) for k, v in r.data.metrics.items()
                                if k.startswith(("ndcg", "recall")))))
    return sorted(rows)


def run_cli(mode: str, tmp: Path) -> dict:
    """The whole ``bench run`` command in a new process, as a user runs it."""
    import subprocess

    uri = f"sqlite:///{tmp / f'{mode}-{time.time_ns()}.db'}"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(tmp / "grid.yaml"), "-q",
           "--tracking-uri", uri] + (["--jobs", "2"] if mode == "cli-jobs2" else [])
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{mode}: bench run exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {"mode": mode, "wall_s": wall, "sum_train_s": float("nan"), "load_before": load0,
            "load_after": os.getloadavg()[0], "metrics": _store_metrics(uri)}


def run_mode(mode: str, suite, cells, registry, tmp: Path, cache: Path) -> dict:
    from harness.runner import run_suite

    if mode.startswith("cli-"):
        return run_cli(mode, tmp)

    kwargs = {"sequential": {}, "jobs2": {"jobs": 2},
              "ray2": {"jobs": 2, "executor": "ray"}}[mode]
    uri = f"sqlite:///{tmp / f'{mode}-{time.time_ns()}.db'}"
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    results = run_suite(suite, cells, registry, tracking_uri=uri, cache_dir=cache, **kwargs)
    wall = time.perf_counter() - t0
    bad = [r for r in results if r.status != "finished"]
    if bad:
        raise SystemExit(f"{mode}: {len(bad)} cell(s) did not finish: {bad[0].error}")
    metrics = [(r.cell.label, sorted((k, v) for k, v in r.metrics.items() if "@" in k))
               for r in results]
    train = sum(r.metrics.get("train_seconds", 0.0) for r in results)
    return {"mode": mode, "wall_s": wall, "sum_train_s": train, "load_before": load0,
            "load_after": os.getloadavg()[0], "metrics": metrics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="sequential,jobs2,ray2")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of all modes (interleaved)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every cell's epoch "
                    "budget (longer cells amortise the workers' start-up)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "scaleout-results.json"))
    args = ap.parse_args()
    for m in GRID["methods"]:
        m["params"]["epochs"] = round(m["params"]["epochs"] * args.scale)
        m["params"]["patience"] = round(m["params"]["patience"] * args.scale)
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as t:
        tmp = Path(t)
        cache = ROOT / ".bench_cache"
        suite, cells, registry = _load(tmp)
        from harness.runner import prepare_dataset

        prepare_dataset(cells[0].dataset, cells[0].task, registry, cache)  # warm split cache
        rows = []
        for round_ in range(args.repeat):
            for mode in modes:
                row = run_mode(mode, suite, cells, registry, tmp, cache)
                row["round"] = round_
                rows.append(row)
                print(f"round {round_} {mode:<10} wall {row['wall_s']:7.1f} s  "
                      f"(load {row['load_before']:.1f} -> {row['load_after']:.1f})", flush=True)
    base = {(r["round"], r["mode"].startswith("cli-")): r for r in rows
            if r["mode"] in ("sequential", "cli-sequential")}
    print(f"\n{len(cells)} cells ({', '.join(m['name'] for m in GRID['methods'])} x "
          f"{len(GRID['seeds'])} seeds on ml-100k), OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"{os.cpu_count()} cores\n")
    print("| round | mode | wall s | ratio to sequential | metrics identical to sequential |")
    print("|---|---|---|---|---|")
    for r in rows:
        seq = base.get((r["round"], r["mode"].startswith("cli-")))
        ratio = f"{r['wall_s'] / seq['wall_s']:.2f}" if seq else "-"
        same = ("yes" if seq and r["metrics"] == seq["metrics"] else
                "-" if not seq else "NO")
        print(f"| {r['round']} | {r['mode']} | {r['wall_s']:.1f} | {ratio} | {same} |")
    Path(args.out).write_text(json.dumps({"cells": len(cells), "grid": GRID, "rows": rows},
                                         indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
