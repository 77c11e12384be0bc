"""Scale-out: one grid run sequentially, with ``--jobs 2`` and on a local Ray with 2 CPUs,
in one process, one after another: wall-time ratios and whether every metric is identical.

    OMP_NUM_THREADS=1 python benchmarks/scaleout.py            # 10 cells on ml-100k
    OMP_NUM_THREADS=1 python benchmarks/scaleout.py --scale 3  # cells 3x as long

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
                {"name": "lightgcn", "params": {"dim": 32, "epochs": 4, "patience": 4,
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


def run_mode(mode: str, suite, cells, registry, tmp: Path, cache: Path) -> dict:
    from harness.runner import run_suite

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
    ap.add_argument("--scale", type=int, default=1, help="multiply every cell's epoch budget "
                    "(longer cells amortise the workers' start-up)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "scaleout-results.json"))
    args = ap.parse_args()
    for m in GRID["methods"]:
        m["params"]["epochs"] *= args.scale
        m["params"]["patience"] *= args.scale
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
    base = {r["round"]: r for r in rows if r["mode"] == "sequential"}
    print(f"\n{len(cells)} cells ({', '.join(m['name'] for m in GRID['methods'])} x "
          f"{len(GRID['seeds'])} seeds on ml-100k), OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"{os.cpu_count()} cores\n")
    print("| round | mode | wall s | ratio to sequential | metrics identical to sequential |")
    print("|---|---|---|---|---|")
    for r in rows:
        seq = base.get(r["round"])
        ratio = f"{r['wall_s'] / seq['wall_s']:.2f}" if seq else "-"
        same = ("yes" if seq and r["metrics"] == seq["metrics"] else
                "-" if not seq else "NO")
        print(f"| {r['round']} | {r['mode']} | {r['wall_s']:.1f} | {ratio} | {same} |")
    Path(args.out).write_text(json.dumps({"cells": len(cells), "grid": GRID, "rows": rows},
                                         indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
