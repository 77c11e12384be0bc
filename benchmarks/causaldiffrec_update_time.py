"""CPU seconds per CausalDiffRec representation update on the ood suite's popularity-shift
split (ml-100k, N = 2,389 nodes), for the full model and the no-environment ablation.

    OMP_NUM_THREADS=1 python benchmarks/causaldiffrec_update_time.py --updates 10

Sizes the suite (``rep_epochs`` x ``outer_steps`` updates per cell) from a measurement
rather than a guess. CPU seconds are this process's (``time.process_time``), so they
hold on a shared machine; wall seconds depend on the load, printed next to them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from harness.registry import Registry  # noqa: E402
from harness.runner import prepare_dataset  # noqa: E402
from harness.suite import load_suite  # noqa: E402
from plugins.causaldiffrec import CausalDiffRecParams  # noqa: E402
from plugins.causaldiffrec.modules import Representation, dense_adjacency  # noqa: E402
from plugins.causaldiffrec.train import node_features  # noqa: E402


def measure(dataset, params: dict, updates: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """(CPU s, wall s) of each of ``updates`` outer steps after one warm-up step."""
    p = CausalDiffRecParams(**params)
    torch.manual_seed(seed)
    n = dataset.n_users + dataset.n_items
    rep = Representation(p, dataset.n_users, dataset.n_items, node_features(n, p.feat_dim, seed))
    coo = dataset.matrix("train").tocoo()
    a = dense_adjacency(dataset.n_users, dataset.n_items, coo.row, coo.col, p.symmetrize_edges)
    rep.train()
    rep.outer_step(a)
    cpu, wall = [], []
    for _ in range(updates):
        c, w = time.process_time(), time.perf_counter()
        rep.outer_step(a)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--suite", default=str(ROOT / "suites/ood.yaml"))
    ap.add_argument("--dataset", default="pop-ood")
    args = ap.parse_args()
    torch.set_num_threads(1)
    registry = Registry()
    suite, _ = load_suite(Path(args.suite), registry)
    entry = next(d for d in suite.datasets if d.key == args.dataset)
    dataset = prepare_dataset(entry, "topk", registry)
    methods = {m.key: m for m in suite.methods if m.name == "causaldiffrec"}
    load = os.getloadavg()[0]
    print(f"{args.dataset}: N = {dataset.n_users + dataset.n_items} nodes, load average {load:.1f} "
          f"on {os.cpu_count()} cores, one torch thread")
    print("| arm | CPU s / update | wall s / update | updates per cell | CPU s per cell (rep. stage) |")
    print("|---|---|---|---|---|")
    for key, m in methods.items():
        params = {k: v for k, v in m.params.items()}
        cpu, wall = measure(dataset, params, args.updates)
        per_cell = params.get("rep_epochs", 8) * params.get("outer_steps", 2)
        c = statistics.median(cpu)
        print(f"| {key} | {c:.3f} | {statistics.median(wall):.3f} | {per_cell} | {c * per_cell:.0f} |")


if __name__ == "__main__":
    main()
