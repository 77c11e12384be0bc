"""`implicit`'s CPU BPR (single thread) beside bench's and RecBole's BPR-MF on ml-100k.

    PARITY_THREADS=1 python benchmarks/implicit_bpr/run.py [--lrs 0.001,0.01] [--epochs N]
        [--parity benchmarks/recbole_parity/results.json] [--table]

Benchmark-only: `implicit` lives in its own virtualenv (``setup_venv.sh`` builds
``.bench_cache/implicit-venv``), never in bench's dependencies. The split, dim, epochs,
patience and metrics come from the ``bpr_mf`` cell of suites/parity.yaml, as for the
RecBole parity run. implicit trains with plain per-sample SGD (no Adam), so its learning
rate is not bench's: it runs once per value of ``--lrs`` (the suite's lr, 1e-3, and
implicit's default, 1e-2); regularisation is the suite's reg_weight (0). Its factors are
saved after every epoch and scored *here* with bench's scorer (full ranking, training
items masked, ranx NDCG@10 / Recall@20): validation NDCG@10 after each epoch with the
suite's patience picks the epoch, whose test metrics are reported, as bench and RecBole do.

Timing rules are the parity benchmark's: s/epoch = median training seconds per epoch
without the first, wall and (in brackets) the process's CPU seconds, same thread count
(``PARITY_THREADS``, default 1). The table adds the bench and RecBole BPR-MF rows of the
parity results file when it has them (measured by ``recbole_parity/run.py``, at its own
time and load: compare ratios within one run, not across runs).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.registry import Registry  # noqa: E402
from harness.runner import prepare_dataset  # noqa: E402
from harness.scoring import score_ranking  # noqa: E402
from harness.suite import load_suite  # noqa: E402

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("IMPLICIT_VENV", ROOT / ".bench_cache" / "implicit-venv"))


class Factors:
    """A trained factorisation as bench's scorer sees a model: ``score(users)`` is the
    dot product of user and item factors (implicit keeps its item bias as the last item
    factor, against a constant 1 in the user factors, so the bias is included)."""

    def __init__(self, user: np.ndarray, item: np.ndarray) -> None:
        import torch

        self.user = torch.from_numpy(np.ascontiguousarray(user, dtype=np.float32))
        self.item = torch.from_numpy(np.ascontiguousarray(item, dtype=np.float32))

    def score(self, users):
        return self.user[users] @ self.item.T


def threads() -> int:
    return int(os.environ.get("PARITY_THREADS", "1"))


def steady(seconds: list[float]) -> float:
    """Median epoch time without the first epoch (the parity benchmark's rule)."""
    return float(statistics.median(seconds[1:] or seconds))


def run_implicit(ds, p: dict, lr: float, epochs: int, registry, metrics_catalogue) -> dict:
    with tempfile.TemporaryDirectory(prefix="implicit-bpr-") as tmp:
        tmp = Path(tmp)
        m = ds.train_matrix.tocsr()
        np.savez(tmp / "train.npz", data=np.ones_like(m.data, dtype=np.float32),
                 indices=m.indices, indptr=m.indptr, shape=np.array(m.shape))
        job = {"train": str(tmp / "train.npz"), "out": str(tmp / "factors"), "factors": p["dim"],
               "lr": lr, "regularization": float(p.get("reg_weight", 0.0)), "epochs": epochs,
               "seed": 0, "threads": threads()}
        (tmp / "job.json").write_text(json.dumps(job))
        env = dict(os.environ, OMP_NUM_THREADS=str(threads()), OPENBLAS_NUM_THREADS=str(threads()))
        proc = subprocess.run([str(VENV / "bin" / "python"), str(HERE / "driver.py"),
                               str(tmp / "job.json")], capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"implicit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        # early stopping on validation NDCG@10 with the suite's patience, as bench's fit does
        best, best_epoch, bad, valid = -1.0, -1, 0, []
        for epoch in range(epochs):
            f = np.load(tmp / "factors" / f"epoch_{epoch:03d}.npz")
            value = score_ranking(Factors(f["user"], f["item"]), ds, "valid", ["ndcg@10"],
                                  metrics_catalogue).metrics["ndcg@10"]
            valid.append(value)
            if value > best:
                best, best_epoch, bad = value, epoch, 0
            else:
                bad += 1
                if bad >= p["patience"]:
                    break
        f = np.load(tmp / "factors" / f"epoch_{best_epoch:03d}.npz")
        test = score_ranking(Factors(f["user"], f["item"]), ds, "test", ["ndcg@10", "recall@20"],
                             metrics_catalogue).metrics
    run = len(valid)  # epochs up to the early stop (implicit trained all, timing uses these)
    return {"lr": lr, "ndcg@10": test["ndcg@10"], "recall@20": test["recall@20"],
            "best_epoch": best_epoch, "epochs_run": run, "best_valid": best,
            "seconds_per_epoch": steady(result["epoch_seconds"][:run]),
            "cpu_seconds_per_epoch": steady(result["epoch_cpu_seconds"][:run]),
            "epoch_seconds": result["epoch_seconds"], "epoch_cpu_seconds": result["epoch_cpu_seconds"],
            "implicit": result["implicit"], "numpy": result["numpy"],
            "factors_shape": result["factors_shape"]}


def table(rows: list[dict], parity: list[dict]) -> str:
    out = ["| library | setting | epochs run (best) | NDCG@10 | Recall@20 | s/epoch wall (CPU) "
           "| ratio to RecBole wall (CPU) |", "|---|---|---|---|---|---|---|"]
    bpr = next((r for r in parity if r.get("model") == "bpr_mf"), {})
    rb = bpr.get("recbole")

    def ratio(s, c):
        if not rb:
            return "–"
        return f"{s / rb['seconds_per_epoch']:.2f} ({c / rb['cpu_seconds_per_epoch']:.2f})"

    if rb:
        out.append(f"| RecBole 1.2.1 BPR | Adam, batch 2048 | {rb['epochs_run']} "
                   f"| {rb['ndcg@10']:.4f} | {rb['recall@20']:.4f} | {rb['seconds_per_epoch']:.3f} "
                   f"({rb['cpu_seconds_per_epoch']:.3f}) | 1.00 (1.00) |")
    if "bench" in bpr:
        b = bpr["bench"]
        out.append(f"| bench bpr_mf | Adam, batch 2048 | {b['epochs_run']} ({b['best_epoch'] + 1}) "
                   f"| {b['ndcg@10']:.4f} | {b['recall@20']:.4f} | {b['seconds_per_epoch']:.3f} "
                   f"({b['cpu_seconds_per_epoch']:.3f}) | {ratio(b['seconds_per_epoch'], b['cpu_seconds_per_epoch'])} |")
    for r in rows:
        out.append(f"| implicit {r['implicit']} BPR (CPU, 1 thread) | SGD lr {r['lr']:g}, per sample "
                   f"| {r['epochs_run']} ({r['best_epoch'] + 1}) | {r['ndcg@10']:.4f} | {r['recall@20']:.4f} "
                   f"| {r['seconds_per_epoch']:.4f} ({r['cpu_seconds_per_epoch']:.4f}) "
                   f"| {ratio(r['seconds_per_epoch'], r['cpu_seconds_per_epoch'])} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(ROOT / "suites" / "parity.yaml"))
    ap.add_argument("--lrs", default=None, help="comma list of SGD learning rates "
                    "(default: the suite's lr and implicit's default 0.01)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the suite's epochs")
    ap.add_argument("--parity", default=str(ROOT / "benchmarks" / "recbole_parity" / "results.json"),
                    help="parity results whose RecBole/bench BPR-MF rows are printed beside")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--table", action="store_true", help="only print the table from --out")
    args = ap.parse_args()
    parity_path = Path(args.parity)
    parity = json.loads(parity_path.read_text()) if parity_path.exists() else []
    if args.table:
        print(table(json.loads(Path(args.out).read_text())["rows"], parity))
        return
    subprocess.run(["bash", str(HERE / "setup_venv.sh")], check=True, cwd=ROOT,
                   env=dict(os.environ, IMPLICIT_VENV=str(VENV)))
    import torch

    torch.set_num_threads(threads())
    registry = Registry()
    _, cells = load_suite(args.suite, registry)
    cell = next(c for c in cells if c.method.key == "bpr_mf")
    p = dict(cell.method_params)
    epochs = args.epochs or p["epochs"]
    lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else sorted({float(p["lr"]), 0.01})
    ds = prepare_dataset(cell.dataset, cell.task, registry)
    rows = []
    for lr in lrs:
        t0 = time.perf_counter()
        row = run_implicit(ds, p, lr, epochs, registry, registry.catalogue.metrics)
        row["wall_seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"implicit bpr lr {lr:g}: ndcg@10 {row['ndcg@10']:.4f} recall@20 {row['recall@20']:.4f} "
              f"{row['seconds_per_epoch']:.4f} s/epoch ({row['cpu_seconds_per_epoch']:.4f} CPU), "
              f"best epoch {row['best_epoch'] + 1} of {row['epochs_run']}", flush=True)
    Path(args.out).write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M"),
                                          "load_avg": os.getloadavg()[0], "threads": threads(),
                                          "epochs": epochs, "rows": rows}, indent=2))
    print(table(rows, parity))


if __name__ == "__main__":
    main()
