"""Pilot for the Knights-and-Knaves SFT start: CPU cost per SFT step and the greedy
validation accuracy (by number of people) along the way, for one policy size, data
size, difficulty mix and scratchpad.

Why: the start TRPA and its baselines are compared from must be above chance (the spec
asks for 20-60 % correct answers) and its SFT must fit a CPU budget; this measures both
before a suite is sized. It trains from scratch (no cache) and prints one line per
evaluation plus a summary; nothing is written.

    OMP_NUM_THREADS=1 python benchmarks/kk_sft_pilot.py --layers 4 --dim 128 --steps 600 \\
        --eval-every 150 --difficulties 2 3 --scratchpad cases --n-train 4000
"""
from __future__ import annotations

import argparse
import random
import resource
import time
from collections import defaultdict

import torch

from harness.llm import LLMConfig, build_model, sample_responses, sft, train_tokenizer
from harness.tasks.reasoning import make_reasoning


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@torch.no_grad()
def evaluate(model, tok, data, problems, max_new_tokens: int, samples: int) -> dict:
    """Greedy accuracy overall and per difficulty; level-1 share of samples at T = 1."""
    out = sample_responses(model, tok, [p.prompt for p in problems], 1, max_new_tokens, 0.0)
    by_d = defaultdict(list)
    for p, t in zip(problems, out.texts):
        by_d[p.difficulty].append(data.grade(p, t).correct)
    res = {"acc": sum(sum(v) for v in by_d.values()) / len(problems),
           "example": out.texts[0][:160]}
    res.update({f"d{d}": sum(v) / len(v) for d, v in sorted(by_d.items())})
    if samples:
        s = sample_responses(model, tok, [p.prompt for p in problems], samples,
                             max_new_tokens, 1.0)
        levels = [data.grade(problems[i], t).level for i, t in zip(s.prompt_index, s.texts)]
        res.update({f"L{lv}": levels.count(lv) / len(levels) for lv in (1, 2, 3, 4)})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn-mult", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--difficulties", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--scratchpad", default="cases")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-valid", type=int, default=100)
    ap.add_argument("--mix", type=float, nargs=4, default=[0.55, 0.25, 0.10, 0.10])
    ap.add_argument("--max-new-tokens", type=int, default=112)
    ap.add_argument("--samples", type=int, default=2, help="samples per valid puzzle at T=1")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = make_reasoning("knights_knaves", a.n_train, a.n_valid, 1, a.difficulties, 0, a.depth,
                          scratchpad=a.scratchpad)
    prompts, responses = data.sft_pairs(a.mix, seed=0)
    tok = train_tokenizer(data.corpus())
    lens = [len(tok(p + " " + r)["input_ids"]) for p, r in zip(prompts, responses)]
    resp = [len(tok(p.solution)["input_ids"]) for p in data.train]
    cfg = LLMConfig(layers=a.layers, dim=a.dim, heads=a.heads, ffn_mult=a.ffn_mult,
                    max_positions=max(lens) + a.max_new_tokens, seed=a.seed)
    torch.manual_seed(a.seed)
    model = build_model(cfg, tok)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"config {vars(a)}")
    print(f"vocab {len(tok)} params {n_params} seq tokens mean {sum(lens) / len(lens):.0f} "
          f"max {max(lens)}; correct response tokens mean {sum(resp) / len(resp):.0f} "
          f"max {max(resp)}", flush=True)
    t0, c0 = time.time(), cpu_seconds()
    train_cpu = [0.0]
    last = [c0]

    losses_seen: list[float] = []

    def on_step(k: int, loss: float) -> None:
        losses_seen.append(loss)
        if a.eval_every and (k % a.eval_every == 0 or k == a.steps):
            train_cpu[0] += cpu_seconds() - last[0]
            model.eval()
            ce = cpu_seconds()
            res = evaluate(model, tok, data, data.valid, a.max_new_tokens, a.samples)
            ev = cpu_seconds() - ce
            model.train()
            print(f"step {k} sft_cpu_s {train_cpu[0]:.0f} ({train_cpu[0] / k:.3f}/step) "
                  f"eval_cpu_s {ev:.0f} " + f"loss {sum(losses_seen[-20:]) / len(losses_seen[-20:]):.3f} "
                  + " ".join(f"{k2} {v:.3f}" for k2, v in res.items() if k2 != "example")
                  + f" | {res['example']!r}",
                  flush=True)
            last[0] = cpu_seconds()

    losses = sft(model, tok, prompts, responses, a.steps, a.lr, a.batch, a.seed, "cpu", on_step)
    print(f"done: loss {losses[0]:.3f} -> {losses[-1]:.3f}; wall {time.time() - t0:.0f} s, "
          f"cpu {cpu_seconds() - c0:.0f} s (sft only {train_cpu[0]:.0f} s)", flush=True)


if __name__ == "__main__":
    random.seed(0)
    main()
