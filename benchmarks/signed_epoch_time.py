"""Seconds per training epoch of the signed-task methods on ml-100k (mean over a few
epochs; fit() validates only after the last one, outside the epoch timer), with ratios
against LightGCN(pos-only) measured in the same run, in the suite's configuration.

    OMP_NUM_THREADS=1 python benchmarks/signed_epoch_time.py [--epochs 3] [--negatives 10]

The LSGRec paper claims efficiency against sign-aware baselines; this is the check.
"""
from __future__ import annotations

import argparse
import time

import torch

from harness.context import Context, seed_everything
from harness.registry import Registry
from harness.runner import prepare_dataset
from harness.suite import DatasetEntry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--negatives", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=4096)
    args = ap.parse_args()
    reg = Registry()
    ds = prepare_dataset(DatasetEntry(name="ml-100k", task="signed",
                                      split={"strategy": "random_ratio", "ratios": [0.8, 0.1, 0.1],
                                             "seed": 2020}), "signed", reg)
    common = {"dim": 64, "n_layers": 2, "epochs": args.epochs, "patience": 10**6,
              "eval_every": 10**6, "batch_size": args.batch_size, "n_negatives": args.negatives}
    runs = {
        "lightgcn": dict(common, lr=5e-3),
        "siren": dict(common),
        "lsgrec": dict(common),
        "lsgrec(no high-order neg)": dict(common, high_order_negatives=False),
        "lsgrec(no neg loss)": dict(common, w_neg=0.0),
    }
    # warm-up: the first ranx evaluation compiles numba kernels (seconds of CPU), which
    # would otherwise be charged to whichever method runs first
    warm = Context(registry=reg, seed=0, metrics=["ndcg@20"], valid_metric="ndcg@20",
                   device=torch.device("cpu"))
    warm.score(warm.train("pop", {}, ds).model, ds, "valid", ["ndcg@20"])
    times: dict[str, float] = {}
    cpus: dict[str, float] = {}
    for label, params in runs.items():
        method = label.split("(")[0]
        seed_everything(0)
        ctx = Context(registry=reg, seed=0, metrics=["ndcg@20"], valid_metric="ndcg@20",
                      device=torch.device("cpu"))
        t0, c0 = time.perf_counter(), time.process_time()
        model = ctx.train(method, params, ds)  # a TrainResult: .model, .history
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        times[label] = model.history["seconds_per_epoch"]
        cpus[label] = cpu / args.epochs
        print(f"{label:28s} {times[label]:6.2f} s/epoch wall, {cpus[label]:6.2f} CPU-s/epoch "
              f"(CPU incl. one validation; train wall {total:.1f} s)")
    for name, table in (("wall", times), ("CPU", cpus)):
        ref = table["lightgcn"]
        print(f"{name} ratio vs lightgcn(pos-only): "
              + ", ".join(f"{k} {v / ref:.2f}x" for k, v in table.items()))


if __name__ == "__main__":
    main()
