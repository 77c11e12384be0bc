"""CPU time per optimiser step of every peft-suite arm at matched trainable parameters.

The suite logs wall-clock seconds per step, which on a shared machine mixes in other
jobs; this script measures process CPU time (``time.process_time``, one thread) on the
same backbone shape and the same batches, so the ratios isolate what the arms cost:
the long prompt lengthens every sequence by l tokens, DePT/EPT by m.

    OMP_NUM_THREADS=1 python benchmarks/peft_step_time.py [--dim 64] [--batch 16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.llm import LLMConfig, build_model, train_tokenizer  # noqa: E402
from harness.tasks.text_classification import corpus, make_text_classification  # noqa: E402
from plugins.ept import PEFTParams  # noqa: E402
from plugins.ept.arms import ARMS, ArmModule, plan, shape_of  # noqa: E402
from plugins.ept.backbone import encode, label_ids  # noqa: E402
from plugins.ept.train import TaskState, label_logits  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--task", default="nli")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = make_text_classification(tasks=[args.task], n_train=args.batch * args.steps,
                                    n_valid=4, n_test=4, pretrain_per_task=4)
    tok = train_tokenizer(corpus(data))
    cfg = LLMConfig(layers=args.layers, dim=args.dim, heads=4, ffn_mult=2, max_positions=128)
    backbone = build_model(cfg, tok).eval()
    for w in backbone.parameters():
        w.requires_grad_(False)
    p = PEFTParams(llm=cfg)
    info = data.extra["tasks"][args.task]
    rows = encode(tok, [e.text for e in data.train[args.task]], p.max_length, args.task)
    y = torch.tensor([e.label for e in data.train[args.task]])
    n_backbone = sum(w.numel() for w in backbone.parameters())
    print(f"d={args.dim} layers={args.layers} batch={args.batch} task={args.task} "
          f"mean input {statistics.fmean(map(len, rows)):.1f} tokens; CPU ms/step "
          f"(median of {args.steps - 5} steps after 5 warm-up)")
    print("| arm | trainable | virtual tokens | CPU ms/step | vs pt_long |")
    print("|---|---|---|---|---|")
    base = None
    for arm in ARMS:
        module = ArmModule(plan(arm, p, shape_of(backbone, p.max_length), n_backbone), backbone,
                           p, torch.Generator().manual_seed(0))
        st = TaskState(info, module, label_ids(tok, info), rows, y)
        opt = torch.optim.AdamW(module.param_groups(1e-2, 0.1, 0.0))
        times = []
        for s in range(args.steps):
            batch = slice(s * args.batch, (s + 1) * args.batch)
            c0 = time.process_time()
            loss = torch.nn.functional.cross_entropy(
                label_logits(st, rows[batch], tok.pad_token_id, "cpu"), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if s >= 5:
                times.append(time.process_time() - c0)
        ms = statistics.median(times) * 1000
        base = base or ms
        print(f"| {arm} | {module.n_trainable()} | {module.prefix} | {ms:.1f} | {ms / base:.2f} |")


if __name__ == "__main__":
    main()
