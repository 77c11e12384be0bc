"""Parity of bench's BPR-MF, LightGCN and SASRec with RecBole 1.2.1 on MovieLens-100k.

    python benchmarks/recbole_parity/run.py [--max-epochs N] [--models bpr_mf,lightgcn,sasrec]

Both libraries get the *same split* (bench's frozen split exported as RecBole benchmark
files), the same embedding size, epochs, batch size, learning rate, patience and metrics,
taken from the cells labelled bpr_mf / lightgcn / sasrec in suites/parity.yaml
(``--max-epochs`` caps the epochs of both sides alike). Each model runs in bench, then in
RecBole (a separate virtualenv made by setup_venv.sh), one after the other, and one table
is printed. Timings: mean training seconds per epoch (validation excluded) and the
full-ranking evaluation time on test, both measured in this run on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.blocks.sequence import chronological_sequences  # noqa: E402
from harness.registry import Registry  # noqa: E402
from harness.runner import prepare_dataset, run_cell  # noqa: E402
from harness.suite import load_suite  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = ROOT / ".bench_cache" / "recbole_parity"
VENV = Path(os.environ.get("RECBOLE_VENV", ROOT / ".bench_cache" / "recbole-venv"))
RECBOLE_NAME = {"bpr_mf": "BPR", "lightgcn": "LightGCN", "sasrec": "SASRec"}


def export_topk(ds, folder: Path) -> None:
    """bench split -> <name>.{train,valid,test}.inter (RecBole benchmark_filename)."""
    folder.mkdir(parents=True, exist_ok=True)
    d = ds.data
    for part, idx in (("train", ds.train_idx), ("valid", ds.valid_idx), ("test", ds.test_idx)):
        with open(folder / f"{folder.name}.{part}.inter", "w") as f:
            f.write("user_id:token\titem_id:token\n")
            for u, i in zip(d.user[idx], d.item[idx]):
                f.write(f"{d.user_tokens[u]}\t{d.item_tokens[i]}\n")


def export_sequential(ds, folder: Path, max_len: int) -> dict:
    """Leave-one-out split -> RecBole's pre-augmented sequential benchmark files: one row
    per training target with its previous ``max_len`` items, one valid row (history =
    train) and one test row (history = train+valid) per user, in bench's time order.
    Returns the per-user exclusion lists (train+valid item tokens) for masked metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    d = ds.data
    ut, it = d.user_tokens, d.item_tokens
    train = chronological_sequences(ds, ("train",))
    train_valid = chronological_sequences(ds, ("train", "valid"))
    valid, test = ds.part("valid"), ds.part("test")
    header = "user_id:token\titem_id:token\titem_id_list:token_seq\n"
    row = lambda u, target, hist: f"{ut[u]}\t{it[target]}\t{' '.join(it[h] for h in hist[-max_len:])}\n"  # noqa: E731
    with open(folder / f"{folder.name}.train.inter", "w") as f:
        f.write(header)
        for u, seq in enumerate(train):
            for t in range(1, len(seq)):
                f.write(row(u, seq[t], seq[:t]))
    for part, inter, hist in (("valid", valid, train), ("test", test, train_valid)):
        with open(folder / f"{folder.name}.{part}.inter", "w") as f:
            f.write(header)
            for u, target in zip(inter.user, inter.item):
                f.write(row(u, target, hist[u]))
    return {str(ut[u]): [str(it[i]) for i in seq] for u, seq in enumerate(train_valid)}


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
    """Same intra-op thread count on both sides (PARITY_THREADS, default 2)."""
    return int(os.environ.get("PARITY_THREADS", "2"))


def run_recbole(method: str, cfg: dict, dataset: str, exclude: dict | None) -> dict:
    job = WORK / f"job_{method}.json"
    job.write_text(json.dumps({"model": RECBOLE_NAME[method], "dataset": dataset, "config": cfg,
                               "exclude": exclude, "threads": torch_threads()}))
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    proc = subprocess.run([str(VENV / "bin" / "python"), str(HERE / "recbole_driver.py"), str(job)],
                          capture_output=True, text=True, env=env, cwd=WORK)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"RecBole {method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(ROOT / "suites" / "parity.yaml"))
    ap.add_argument("--max-epochs", type=int, default=None, help="cap epochs on both sides alike")
    ap.add_argument("--models", default="bpr_mf,lightgcn,sasrec")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    subprocess.run(["bash", str(HERE / "setup_venv.sh")], check=True, cwd=ROOT,
                   env=dict(os.environ, RECBOLE_VENV=str(VENV)))
    import torch

    torch.set_num_threads(torch_threads())
    registry = Registry()
    _, cells = load_suite(args.suite, registry)
    wanted = args.models.split(",")
    rows = []
    for method in wanted:
        cell = next(c for c in cells if c.method.key == method)
        if args.max_epochs:
            params = dict(cell.method_params, epochs=min(cell.method_params["epochs"], args.max_epochs))
            cell = type(cell)(cell.suite, cell.dataset, cell.method, cell.seed, cell.metrics,
                              cell.valid_metric, cell.task, params)
        p = cell.method_params
        ds = prepare_dataset(cell.dataset, cell.task, registry)
        folder = WORK / "data" / f"bench_{method}"
        exclude = None
        if cell.task == "sequential":
            exclude = export_sequential(ds, folder, p["max_len"])
        else:
            export_topk(ds, folder)
        t0 = time.perf_counter()
        metrics, _, _ = run_cell(cell, ds, registry)
        print(f"bench {method}: {metrics['ndcg@10']:.4f} ndcg@10 in {time.perf_counter() - t0:.0f}s",
              flush=True)
        t0 = time.perf_counter()
        rb = run_recbole(method, recbole_config(method, p, folder, p["epochs"]), folder.name, exclude)
        print(f"recbole {method}: {rb['ndcg@10']:.4f} ndcg@10 in {time.perf_counter() - t0:.0f}s",
              flush=True)
        rows.append({"model": method, "epochs": p["epochs"], "bench": {
            "ndcg@10": metrics["ndcg@10"], "recall@20": metrics["recall@20"],
            "seconds_per_epoch": metrics["seconds_per_epoch"], "eval_seconds": metrics["eval_seconds"],
            "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"]}, "recbole": rb})
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(table(rows))


def table(rows: list[dict]) -> str:
    """Markdown table; for SASRec RecBole's metrics are shown with history masked (bench's
    protocol) and, in brackets, RecBole's own unmasked protocol."""
    out = ["| model | epochs | RecBole NDCG@10 | RecBole Recall@20 | bench NDCG@10 | bench Recall@20 "
           "| NDCG rel. diff | RecBole s/epoch | bench s/epoch | ratio | RecBole eval s | bench eval s | eval ratio |",
           "|" + "---|" * 13]
    for r in rows:
        b, rb = r["bench"], r["recbole"]
        nd, rc = rb.get("masked_ndcg@10", rb["ndcg@10"]), rb.get("masked_recall@20", rb["recall@20"])
        native = f" ({rb['ndcg@10']:.4f})" if "masked_ndcg@10" in rb else ""
        native_r = f" ({rb['recall@20']:.4f})" if "masked_recall@20" in rb else ""
        out.append(f"| {r['model']} | {r['epochs']} | {nd:.4f}{native} | {rc:.4f}{native_r} | "
                   f"{b['ndcg@10']:.4f} | {b['recall@20']:.4f} | {(b['ndcg@10'] - nd) / nd:+.1%} | "
                   f"{rb['seconds_per_epoch']:.2f} | {b['seconds_per_epoch']:.2f} | "
                   f"{b['seconds_per_epoch'] / rb['seconds_per_epoch']:.2f} | {rb['eval_seconds']:.2f} | "
                   f"{b['eval_seconds']:.2f} | {b['eval_seconds'] / rb['eval_seconds']:.2f} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
