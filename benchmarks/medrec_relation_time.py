"""HIER's relation pre-training cost on the real ICD-9 trees (CPU seconds and wall seconds
per epoch at the released batch size 256, dim 128), and the synthetic data's size.

    OMP_NUM_THREADS=1 python benchmarks/medrec_relation_time.py --epochs 3
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.tasks.medrec.codes import load_tree  # noqa: E402
from harness.tasks.medrec.synthetic import make_synthetic_medrec  # noqa: E402
from plugins.hier.relation import pretrain_relation  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--patients", type=int, default=800)
    args = ap.parse_args()
    for kind in ("icd9cm", "icd9proc"):
        tree = load_tree(kind)
        w0, c0 = time.perf_counter(), time.process_time()
        _, losses = pretrain_relation(tree.parent, seed=0, epochs=args.epochs)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print(f"{kind}: {len(tree)} nodes, {len(tree.leaves())} leaves; "
              f"{cpu / args.epochs:.2f} CPU s/epoch ({wall / args.epochs:.2f} wall s/epoch); "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f} over {args.epochs} epochs")
    for hierarchy in ("aligned", "permuted"):
        d = make_synthetic_medrec(args.patients, hierarchy)
        print(f"medrec_synth {args.patients} patients, {hierarchy}: {d.diagnostics}")


if __name__ == "__main__":
    main()
