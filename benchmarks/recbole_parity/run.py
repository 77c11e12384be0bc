"""Parity of bench's BPR-MF, LightGCN and SASRec with RecBole 1.2.1 on MovieLens-100k.

    PARITY_THREADS=1 python benchmarks/recbole_parity/run.py [--epochs N | --max-epochs N]
        [--models bpr,lightgcn,sasrec] [--sides bench,recbole] [--bench-set KEY=VALUE]
        [--out FILE] [--table]

Both libraries get the *same split* (bench's frozen split exported as RecBole benchmark
files), the same embedding size, epochs, batch size, learning rate, patience and metrics,
taken from the cells labelled bpr_mf / lightgcn / sasrec in suites/parity.yaml
(``--max-epochs`` caps the epochs of both sides alike). Each model runs in bench, then in
RecBole (a separate virtualenv made by setup_venv.sh), one after the other; each model's
row is printed and saved to results.json as soon as it is done (a run that dies half-way
keeps the finished rows; ``--table`` reprints them). Timings, same rule both sides: the
median training seconds per epoch without the first epoch (one-time warm-up), validation
excluded, and the full-ranking evaluation time on test after training, the median of 5
calls after a first one (which may still pay one-time costs such as loading ranx's numba
kernels for metrics validation did not use; it is kept as eval_first_seconds), with the same torch
thread count (PARITY_THREADS) on both sides.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.data.export import export_recbole_sequential as export_sequential  # noqa: E402
from harness.data.export import export_recbole_topk as export_topk  # noqa: E402
from harness.registry import Registry  # noqa: E402
from harness.runner import prepare_dataset, run_cell  # noqa: E402
from harness.suite import load_suite  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = ROOT / ".bench_cache" / "recbole_parity"
VENV = Path(os.environ.get("RECBOLE_VENV", ROOT / ".bench_cache" / "recbole-venv"))
RECBOLE_NAME = {"bpr_mf": "BPR", "lightgcn": "LightGCN", "sasrec": "SASRec"}


def recbole_config(method: str, p: dict, folder: Path, epochs: int) -> dict:
    cfg = {
        "data_path": str(folder.parent), "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id"]},
        "epochs": epochs, "train_batch_size": p["batch_size"], "learning_rate": p["lr"],
        "stopping_step": p["patience"], "eval_step": 1, "eval_batch_size": 4096,
        "metrics": ["NDCG", "Recall"], "topk": [10, 20], "valid_metric": "NDCG@10",
        "embedding_size": p["dim"], "seed": 0, "reproducibility": True, "show_progress": False,
        "checkpoint_dir": str(WORK / "saved"), "worker": 0, "device": "cpu", "use_gpu": False,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "log_wandb": False, "state": "WARNING",
    }
    if method == "lightgcn":
        cfg.update(n_layers=p["n_layers"], reg_weight=p["reg_weight"], require_pow=True)
    if method == "sasrec":
        cfg.update(load_col={"inter": ["user_id", "item_id", "item_id_list"]},
                   alias_of_item_id=["item_id_list"], MAX_ITEM_LIST_LENGTH=p["max_len"],
                   hidden_size=p["dim"], inner_size=p["inner"], n_layers=p["n_layers"],
                   n_heads=p["n_heads"], hidden_dropout_prob=p["dropout"],
                   attn_dropout_prob=p["attn_dropout"], hidden_act="gelu", layer_norm_eps=1e-12,
                   initializer_range=0.02, loss_type="CE", train_neg_sample_args=None,
                   train_batch_size=2048,  # RecBole's default: one example per target (prefix)
                   eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"})
    return cfg


def torch_threads() -> int:
    """Same intra-op thread count on both sides (PARITY_THREADS, default 1: on a shared,
    loaded machine 2 OpenMP threads ran ~10x slower than 1, from spinning)."""
    return int(os.environ.get("PARITY_THREADS", "1"))


def run_recbole(method: str, cfg: dict, dataset: str, exclude: dict | None) -> dict:
    job = WORK / f"job_{method}.json"
    job.write_text(json.dumps({"model": RECBOLE_NAME[method], "dataset": dataset, "config": cfg,
                               "exclude": exclude, "threads": torch_threads()}))
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", OMP_NUM_THREADS=str(torch_threads()))
    proc = subprocess.run([str(VENV / "bin" / "python"), str(HERE / "recbole_driver.py"), str(job)],
                          capture_output=True, text=True, env=env, cwd=WORK)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"RecBole {method} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


class EpochClock:
    """Stands in for the MLflow logger of ``run_cell`` to time each training epoch: the
    training loop logs ``train_loss`` right after an epoch's training and reports the
    validation metric right after validating, so the gap between a validation report
    (or the start) and the next ``train_loss`` is exactly one epoch's training."""

    def __init__(self) -> None:
        self.mark, self.cpu_mark = time.perf_counter(), time.process_time()
        self.train_s: list[float] = []
        self.train_cpu_s: list[float] = []

    def metrics(self, values: dict, step=None) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if "train_loss" in values:
            self.train_s.append(now - self.mark)
            self.train_cpu_s.append(cpu - self.cpu_mark)
        self.mark, self.cpu_mark = now, cpu

    def json(self, *a, **k) -> None:
        pass

    def file(self, *a, **k) -> None:
        pass

    def tags(self, *a, **k) -> None:
        pass

    def tmpdir(self):
        import tempfile

        return tempfile.TemporaryDirectory()


def steady(seconds: list[float]) -> float:
    """Median epoch time without the first epoch (one-time warm-up: allocator, lazy
    caches, first-call dispatch), the same rule for both libraries."""
    rest = seconds[1:] or seconds
    return float(statistics.median(rest))


def run_bench(cell, registry) -> dict:
    ds = prepare_dataset(cell.dataset, cell.task, registry)
    clock = EpochClock()
    test_eval: dict = {}

    def time_test_scoring(ctx) -> None:
        score = ctx.score

        def timed(model, dataset, part, metrics):
            if part != "test":
                return score(model, dataset, part, metrics)
            # one call first (it may still load ranx kernels for metrics validation did
            # not use: one-time, per process), then the median of 5 timed calls
            t0 = time.perf_counter()
            out = score(model, dataset, part, metrics)
            first = time.perf_counter() - t0
            walls, cpus = [], []
            for _ in range(5):  # median of 5 timed calls, as recbole_driver.py does
                t0, c0 = time.perf_counter(), time.process_time()
                score(model, dataset, part, metrics)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            test_eval.update(first=first, wall=statistics.median(walls), cpu=statistics.median(cpus))
            return out

        ctx.score = timed

    t0 = time.perf_counter()
    metrics, _, _ = run_cell(cell, ds, registry, log=clock, setup=time_test_scoring)
    return {"ndcg@10": metrics["ndcg@10"], "recall@20": metrics["recall@20"],
            "seconds_per_epoch": steady(clock.train_s), "epoch_seconds": clock.train_s,
            "cpu_seconds_per_epoch": steady(clock.train_cpu_s),
            "mean_seconds_per_epoch": metrics["seconds_per_epoch"],
            "eval_seconds": test_eval["wall"], "eval_cpu_seconds": test_eval["cpu"],
            "eval_first_seconds": test_eval["first"],
            "epochs_run": int(metrics["epochs_run"]),
            "best_epoch": int(metrics["best_epoch"]), "wall_seconds": time.perf_counter() - t0}


def save_row(path: Path, row: dict) -> list[dict]:
    """Replace this model's row in ``path`` (a JSON list) and return all rows, so a run
    that dies half-way still leaves every finished model's row on disk."""
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if r["model"] != row["model"]] + [row]
    order = list(RECBOLE_NAME)
    rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    path.write_text(json.dumps(rows, indent=2))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(ROOT / "suites" / "parity.yaml"))
    ap.add_argument("--epochs", type=int, default=None, help="set the epochs of both sides alike")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap epochs on both sides alike")
    ap.add_argument("--models", default="bpr_mf,lightgcn,sasrec",
                    help="comma list of bpr_mf (alias bpr), lightgcn, sasrec")
    ap.add_argument("--sides", default="bench,recbole", help="run only one library: bench or recbole")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--bench-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a bench-side method param only (e.g. reg_weight=1e-4, the "
                         "quickstart/default BPR-MF setting; RecBole's BPR has no L2); "
                         "repeatable; use with --out to keep the parity rows apart")
    ap.add_argument("--table", action="store_true", help="only print the table from --out")
    args = ap.parse_args()
    bench_set = {}
    for item in args.bench_set:
        key, _, value = item.partition("=")
        if not key or not value:
            raise SystemExit(f"--bench-set: expected KEY=VALUE, got '{item}'")
        try:
            bench_set[key] = json.loads(value)
        except json.JSONDecodeError:
            bench_set[key] = value
    out = Path(args.out)
    if args.table:
        print(table(json.loads(out.read_text())))
        return
    subprocess.run(["bash", str(HERE / "setup_venv.sh")], check=True, cwd=ROOT,
                   env=dict(os.environ, RECBOLE_VENV=str(VENV)))
    import torch

    torch.set_num_threads(torch_threads())
    registry = Registry()
    _, cells = load_suite(args.suite, registry)
    aliases = {"bpr": "bpr_mf", "bprmf": "bpr_mf", "bpr-mf": "bpr_mf"}
    wanted = [aliases.get(m.strip().lower(), m.strip().lower()) for m in args.models.split(",")]
    unknown = [m for m in wanted if m not in RECBOLE_NAME]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {', '.join(RECBOLE_NAME)} (or bpr)")
    sides = set(args.sides.split(","))
    failed = []
    for method in wanted:
        cell = next(c for c in cells if c.method.key == method)
        epochs = args.epochs or cell.method_params["epochs"]
        if args.max_epochs:
            epochs = min(epochs, args.max_epochs)
        cell = dataclasses.replace(cell, method_params=dict(cell.method_params, epochs=epochs))
        p = cell.method_params
        folder = WORK / "data" / f"bench_{method}"
        ds = prepare_dataset(cell.dataset, cell.task, registry)
        exclude = export_sequential(ds, folder, p["max_len"]) if cell.task == "sequential" else None
        if cell.task != "sequential":
            export_topk(ds, folder)
        prev = {r["model"]: r for r in json.loads(out.read_text())} if out.exists() else {}
        row = dict(prev.get(method, {}), model=method, epochs=epochs, threads=torch_threads(),
                   when=time.strftime("%Y-%m-%d %H:%M"), load_avg=os.getloadavg()[0])
        try:
            if "bench" in sides:
                bench_cell = dataclasses.replace(cell, method_params=dict(p, **bench_set))
                row["bench"] = run_bench(bench_cell, registry)
                if bench_set:
                    row["bench"]["overrides"] = bench_set
                b = row["bench"]
                print(f"bench {method}: ndcg@10 {b['ndcg@10']:.4f} recall@20 {b['recall@20']:.4f} "
                      f"{b['seconds_per_epoch']:.3f} s/epoch eval {b['eval_seconds']:.3f}s "
                      f"({b['epochs_run']} epochs, {b['wall_seconds']:.0f}s wall)", flush=True)
                save_row(out, row)
            if "recbole" in sides:
                row["load_avg_recbole"] = os.getloadavg()[0]
                t0 = time.perf_counter()
                rb = run_recbole(method, recbole_config(method, p, folder, epochs), folder.name, exclude)
                rb["wall_seconds"] = time.perf_counter() - t0
                row["recbole"] = rb
                print(f"recbole {method}: ndcg@10 {rb['ndcg@10']:.4f} recall@20 {rb['recall@20']:.4f} "
                      f"{rb['seconds_per_epoch']:.3f} s/epoch eval {rb['eval_seconds']:.3f}s "
                      f"({rb['epochs_run']} epochs, {rb['wall_seconds']:.0f}s wall)", flush=True)
                save_row(out, row)
        except Exception as exc:  # keep going: the other models' rows are still worth having
            print(f"{method} failed: {exc}", flush=True)
            failed.append(method)
        if "bench" in row and "recbole" in row:
            print(table([row]), flush=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    print(table(rows))
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


def table(rows: list[dict]) -> str:
    """Markdown table; for SASRec RecBole's metrics are shown with history masked (bench's
    protocol) and, in brackets, RecBole's own unmasked protocol. Times: wall seconds
    (CPU seconds of the process in brackets, less sensitive to other jobs' load)."""
    out = ["| model | epochs run (bench/RecBole) | RecBole NDCG@10 | RecBole Recall@20 | bench NDCG@10 "
           "| bench Recall@20 | NDCG rel. diff | RecBole s/epoch | bench s/epoch | ratio "
           "| RecBole eval s | bench eval s | eval ratio |",
           "|" + "---|" * 13]

    def cpu(x):
        return f" ({x:.3f})" if x is not None else ""

    def ratio(a, b, ca, cb):
        r = f"{a / b:.2f}"
        return r + (f" ({ca / cb:.2f})" if ca is not None and cb else "")

    for r in rows:
        if "bench" not in r or "recbole" not in r:
            continue
        b, rb = r["bench"], r["recbole"]
        nd, rc = rb.get("masked_ndcg@10", rb["ndcg@10"]), rb.get("masked_recall@20", rb["recall@20"])
        native = f" ({rb['ndcg@10']:.4f})" if "masked_ndcg@10" in rb else ""
        native_r = f" ({rb['recall@20']:.4f})" if "masked_recall@20" in rb else ""
        bc, rbc = b.get("cpu_seconds_per_epoch"), rb.get("cpu_seconds_per_epoch")
        be, rbe = b.get("eval_cpu_seconds"), rb.get("eval_cpu_seconds")
        out.append(f"| {r['model']} | {b['epochs_run']}/{rb['epochs_run']} of {r['epochs']} | {nd:.4f}{native} "
                   f"| {rc:.4f}{native_r} | {b['ndcg@10']:.4f} | {b['recall@20']:.4f} "
                   f"| {(b['ndcg@10'] - nd) / nd:+.1%} "
                   f"| {rb['seconds_per_epoch']:.3f}{cpu(rbc)} | {b['seconds_per_epoch']:.3f}{cpu(bc)} "
                   f"| {ratio(b['seconds_per_epoch'], rb['seconds_per_epoch'], bc, rbc)} "
                   f"| {rb['eval_seconds']:.3f}{cpu(rbe)} | {b['eval_seconds']:.3f}{cpu(be)} "
                   f"| {ratio(b['eval_seconds'], rb['eval_seconds'], be, rbe)} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
