"""Time HNLMRec's semantic stage (LLM warm start, profiles, route A generation or route B
LoRA tuning) on a suite's dataset, and fill the same disk cache the suite's cells read.

    OMP_NUM_THREADS=1 python benchmarks/hnlmrec_semantic_stage.py suites/negative_sampling.yaml \
        lightgcn-hnlmrec-B --seed 0

Prints the stage's diagnostics (seconds per stage, how often generated text is a real
title, where the semantic negatives land among real items).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from harness.context import Context, seed_everything
    from harness.registry import Registry
    from harness.runner import CACHE_DIR, prepare_dataset
    from harness.suite import load_suite
    from plugins.hnlmrec import pretrainer, semantic
    from plugins.hnlmrec.params import HNLMRecParams

    ap = argparse.ArgumentParser()
    ap.add_argument("suite")
    ap.add_argument("method", help="label of an hnlmrec method in the suite")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    registry = Registry()
    suite, cells = load_suite(args.suite, registry)
    cell = next(c for c in cells if c.method.key == args.method and c.seed == args.seed)
    ds = prepare_dataset(cell.dataset, cell.task, registry)
    p = HNLMRecParams(**cell.method_params)
    seed_everything(args.seed)
    ctx = Context(registry=registry, seed=args.seed, metrics=list(cell.metrics),
                  valid_metric=cell.valid_metric, cache_dir=CACHE_DIR)
    t0 = time.perf_counter()
    sem = semantic.build(ds, p, args.seed, CACHE_DIR, device=ctx.device,
                         pretrain_cf=pretrainer(p, ds, ctx))
    print(json.dumps({"source": sem.source, "wall_seconds": time.perf_counter() - t0,
                      "examples": sem.texts[:5], **sem.info}, indent=1, default=str))


if __name__ == "__main__":
    main()
