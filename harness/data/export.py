"""The exact split a suite uses, written out for other libraries (``bench data export-split``).

Every file uses the dataset's original user and item ids, so a run made by another library
on these files can be scored under the suite's protocol with ``bench evaluate`` (which
maps the ids back and masks training/validation items as for every cell).

Formats:

- ``csv``: ``<key>.train.csv``, ``.valid.csv``, ``.test.csv`` with ``user,item`` and, when
  the dataset has them, ``rating,timestamp``;
- ``trec-qrels``: ``<key>.{train,valid,test}.qrels`` (``user 0 item relevance``; the
  relevant events of each part: for the signed task the likes);
- ``recbole``: RecBole benchmark files ``<key>/<key>.{train,valid,test}.inter`` (load them
  with ``benchmark_filename: [train, valid, test]``); a ``sequential`` dataset gets the
  pre-augmented sequence rows RecBole's sequential models read (``--max-len``).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

PARTS = ("train", "valid", "test")
FORMATS = ("csv", "trec-qrels", "recbole")


def _safe(name: str) -> str:
    import re

    stem = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).lstrip(".")
    return stem or "dataset"


def export_csv(ds: Any, out: Path) -> list[Path]:
    d, key = ds.data, _safe(ds.name)
    paths = []
    for part in PARTS:
        idx = getattr(ds, f"{part}_idx")
        path = out / f"{key}.{part}.csv"
        cols = ["user", "item"] + (["rating"] if d.rating is not None else []) + \
            (["timestamp"] if d.timestamp is not None else [])
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for n in idx:
                row = [d.user_tokens[d.user[n]], d.item_tokens[d.item[n]]]
                if d.rating is not None:
                    row.append(repr(float(d.rating[n])))
                if d.timestamp is not None:
                    row.append(repr(float(d.timestamp[n])))
                w.writerow(row)
        paths.append(path)
    return paths


def export_qrels(ds: Any, out: Path) -> list[Path]:
    d, key = ds.data, _safe(ds.name)
    paths = []
    for part in PARTS:
        m = ds.matrix(part).tocoo()
        path = out / f"{key}.{part}.qrels"
        order = sorted(zip(m.row.tolist(), m.col.tolist()))
        with open(path, "w") as f:
            for u, i in order:
                f.write(f"{d.user_tokens[u]} 0 {d.item_tokens[i]} 1\n")
        paths.append(path)
    return paths


def export_recbole_topk(ds: Any, folder: Path) -> list[Path]:
    """bench split -> ``<name>.{train,valid,test}.inter`` (RecBole ``benchmark_filename``)."""
    folder.mkdir(parents=True, exist_ok=True)
    d = ds.data
    paths = []
    for part in PARTS:
        idx = getattr(ds, f"{part}_idx")
        path = folder / f"{folder.name}.{part}.inter"
        with open(path, "w") as f:
            f.write("user_id:token\titem_id:token\n")
            for u, i in zip(d.user[idx], d.item[idx]):
                f.write(f"{d.user_tokens[u]}\t{d.item_tokens[i]}\n")
        paths.append(path)
    return paths


def export_recbole_sequential(ds: Any, folder: Path, max_len: int) -> dict[str, list[str]]:
    """Leave-one-out split -> RecBole's pre-augmented sequential benchmark files: one row
    per training target with its previous ``max_len`` items, one valid row (history =
    train) and one test row (history = train+valid) per user, in bench's time order.
    Returns the per-user exclusion lists (train+valid item tokens) for masked metrics."""
    from ..blocks.sequence import chronological_sequences

    folder.mkdir(parents=True, exist_ok=True)
    d = ds.data
    ut, it = d.user_tokens, d.item_tokens
    train = chronological_sequences(ds, ("train",))
    train_valid = chronological_sequences(ds, ("train", "valid"))
    valid, test = ds.part("valid"), ds.part("test")
    header = "user_id:token\titem_id:token\titem_id_list:token_seq\n"

    def row(u, target, hist):
        return f"{ut[u]}\t{it[target]}\t{' '.join(it[h] for h in hist[-max_len:])}\n"

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


def export_split(ds: Any, fmt: str, out: Path, max_len: int = 50) -> list[Path]:
    """Write ``ds``'s split in ``fmt`` under ``out``; return the files written."""
    from ..api import BenchError

    if fmt not in FORMATS:
        raise BenchError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}.")
    if not hasattr(ds, "train_idx"):
        raise BenchError(f"dataset '{ds.name}' is a generated '{ds.task}' task, not "
                         "interactions: there is no split to export.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        return export_csv(ds, out)
    if fmt == "trec-qrels":
        return export_qrels(ds, out)
    folder = out / _safe(ds.name)
    if ds.task == "sequential":
        export_recbole_sequential(ds, folder, max_len)
        return sorted(folder.glob("*.inter"))
    return export_recbole_topk(ds, folder)
