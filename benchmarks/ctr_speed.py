"""Seconds per training step and per evaluated pair of each ctr LLM arm, to size
suites/ctr.yaml for the shared machine (prints figures, asserts nothing).

    OMP_NUM_THREADS=1 python benchmarks/ctr_speed.py [dim] [layers] [history_len]
"""
from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

from harness.context import Context
from harness.registry import Registry
from harness.tasks.ctr import load_ml100k_ctr
from plugins.cora import CoRAParams, TallRecParams
from plugins.cora.cf import train_cf
from plugins.cora.model import LLMCTR, stage0_llm

dim = int(sys.argv[1]) if len(sys.argv) > 1 else 64
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
hist = int(sys.argv[3]) if len(sys.argv) > 3 else 10
t0 = time.perf_counter()
data = load_ml100k_ctr(n_train=2000, n_valid=512, n_test=512, history_len=hist)
data.split_id = "speed"
print(f"task built in {time.perf_counter() - t0:.1f}s")
llm_cfg = {"layers": layers, "dim": dim, "heads": 4, "ffn_mult": 2, "sft_steps": 20}
t0 = time.perf_counter()
cf = train_cf(data, CoRAParams().cf.model_copy(update={"epochs": 5}), 0)
print(f"MF 5 epochs: {time.perf_counter() - t0:.1f}s")
for kind, P in (("tallrec", TallRecParams), ("cora", CoRAParams)):
    p = P(llm=llm_cfg)
    t0 = time.perf_counter()
    llm = stage0_llm(data, p.llm, 500, ".bench_cache", "cpu")
    t_llm = time.perf_counter() - t0
    model = LLMCTR(llm, data, kind, p, cf, 0)
    opt = torch.optim.AdamW(model.trainable_parameters(), 1e-3)
    labels = torch.from_numpy(data.train.label)
    lens = [len(r) for r in model.token_ids("train")]
    t0 = time.perf_counter()
    for s in range(5):
        idx = np.arange(s * 32, (s + 1) * 32)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.logits("train", idx), labels[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    step = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    model.predict(data, "valid")
    ev = (time.perf_counter() - t0) / len(data.valid)
    print(f"{kind}: stage0 {t_llm:.1f}s (20 steps), prompt tokens {np.mean(lens):.0f}, "
          f"train step (b32) {step:.3f}s, eval {ev * 1000:.2f} ms/pair")
