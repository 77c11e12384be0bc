"""Seconds per training epoch of the signed-task methods on ml-100k (median of a few
epochs, no validation), with ratios against LightGCN(pos-only) measured in the same run.

    python benchmarks/signed_epoch_time.py [--epochs 3] [--negatives 40]

The LSGRec paper claims efficiency against sign-aware baselines; this is the check.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from harness.blocks.pairwise import PairwiseParams, train_pairwise  # noqa: F401
from harness.context import Context, seed_everything
from harness.registry import Registry
from harness.runner import prepare_dataset
from harness.suite import DatasetEntry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--negatives", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    reg = Registry()
    ds = prepare_dataset(DatasetEntry(name="ml-100k", task="signed",
                                      split={"strategy": "random_ratio", "ratios": [0.8, 0.1, 0.1],
                                             "seed": 2020}), "signed", reg)
    common = {"dim": 64, "n_layers": 2, "epochs": args.epochs, "patience": 10**6,
              "eval_every": 10**6}
    runs = {
        "lightgcn": dict(common, batch_size=2048, lr=5e-3),
        "siren": dict(common, n_negatives=args.negatives),
        "lsgrec": dict(common, n_negatives=args.negatives),
        "lsgrec(no high-order neg)": dict(common, n_negatives=args.negatives,
                                          high_order_negatives=False),
    }
    # the last epoch always validates in fit(); time the epochs, not the validation
    times: dict[str, float] = {}
    for label, params in runs.items():
        method = label.split("(")[0]
        seed_everything(0)
        epoch_s: list[float] = []
        ctx = Context(registry=reg, seed=0, metrics=["ndcg@20"], valid_metric="ndcg@20",
                      device=torch.device("cpu"))
        ctx.log_metrics = lambda m, step=None, acc=epoch_s: None  # noqa: E731
        t0 = time.perf_counter()
        model = reg.pm.hook.bench_train(method=method, params=params, dataset=ds, ctx=ctx)
        total = time.perf_counter() - t0
        times[label] = model.history["seconds_per_epoch"]
        print(f"{label:28s} {times[label]:6.2f} s/epoch  (train incl. 1 validation: {total:.1f} s)")
    ref = times["lightgcn"]
    print("ratio vs lightgcn(pos-only): " + ", ".join(f"{k} {v / ref:.2f}x" for k, v in times.items()))


if __name__ == "__main__":
    main()
