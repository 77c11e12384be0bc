"""Why StyleVector does (not) personalise on the synthetic users: two diagnostics on the
suite's base LM, beyond greedy-output metrics.

1. Reference NLL: mean per-token negative log-likelihood of each test user's held-out
   references, unsteered vs steered (teacher forcing; the steering covers the last prompt
   token and the response, i.e. the positions generation steers), for each (position,
   layer, α). A steering vector that carries the user's style lowers it even when it
   is too weak to flip a greedy choice.
2. Probe: leave-one-out 1-nearest-neighbour (cosine) recovery of each style attribute
   from the style vectors of all 24 evaluation users, against the majority-class rate.

    OMP_NUM_THREADS=1 python benchmarks/stylevector_diagnostics.py [--seed 0]

Uses the base LM that ``suites/personalization.yaml`` trains (cached under
.bench_cache/llm by content hash; trained here if absent, ~4 min).
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

import torch
import yaml

from harness.llm import encode_pairs, load_llm, response_logprobs
from harness.tasks.personalization import ATTRIBUTES, make_personalization

import plugins.stylevector as sv_plugin
from plugins.stylevector.arms import StyleVector
from plugins.stylevector.steering import steer_masked

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def reference_nll(model, tok, users, vecs=None, layer=0, alpha=0.0) -> float:
    prompts = [q.prompt for u in users for q in u.queries]
    refs = [q.response for u in users for q in u.queries]
    b = encode_pairs(tok, prompts, refs)
    resp = b["response_mask"][:, 1:].float()
    steer_mask = b["response_mask"].clone()
    for i in range(len(prompts)):  # the last prompt token too
        first = int(steer_mask[i].nonzero()[0])
        steer_mask[i, first - 1] = 1
    if vecs is None:
        lp = response_logprobs(model, b["input_ids"], b["attention_mask"])
    else:
        rows = torch.cat([vecs[i].expand(len(u.queries), -1) for i, u in enumerate(users)])
        with steer_masked(model, layer, rows, alpha, steer_mask):
            lp = response_logprobs(model, b["input_ids"], b["attention_mask"])
    return float(-(lp * resp).sum() / resp.sum())


def probe(vectors: torch.Tensor, styles: list[dict]) -> dict[str, tuple[float, float]]:
    v = torch.nn.functional.normalize(vectors, dim=1)
    sim = v @ v.T
    sim.fill_diagonal_(-2)
    nn = sim.argmax(1).tolist()
    out = {}
    for a in ATTRIBUTES:
        acc = sum(styles[i][a] == styles[j][a] for i, j in enumerate(nn)) / len(styles)
        majority = max(collections.Counter(s[a] for s in styles).values()) / len(styles)
        out[a] = (acc, majority)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--suite", default=str(ROOT / "suites/personalization.yaml"))
    args = ap.parse_args()
    suite = yaml.safe_load(Path(args.suite).read_text())
    data = make_personalization(**suite["datasets"][0]["params"])
    base = suite["methods"][0]["params"]
    cfg = sv_plugin.StyleVectorParams(**base).llm.model_copy(update={"seed": args.seed})
    prompts, responses = data.sft_pairs()
    llm = load_llm(cfg, data.corpus(), prompts, responses, cache_dir=ROOT / ".bench_cache",
                   device="cpu")
    model, tok = llm.model, llm.tokenizer
    users = data.test
    print(f"base LM {llm.info.get('key')} (seed {args.seed}), {len(users)} test users")
    print(f"reference NLL, unsteered: {reference_nll(model, tok, users):.3f}")
    positions, layers, alphas = ["last", "mean_response"], [0, 1, 2, 3], [0.5, 1.0, 2.0, 4.0]
    for negatives in ("model", "none", "other_users"):
        sv = StyleVector(model, tok, data, max_new_tokens=28, device="cpu", layers=layers,
                         positions=positions, negatives=negatives, model_key=llm.info.get("key"))
        vecs = sv.vectors(users)
        for position in positions:
            for layer in layers:
                row = [reference_nll(model, tok, users, vecs[(position, layer)], layer, a)
                       for a in alphas]
                print(f"  negatives={negatives:11s} position={position:13s} layer={layer}: " +
                      "  ".join(f"α={a:g}: {v:.3f}" for a, v in zip(alphas, row)))
    sv = StyleVector(model, tok, data, max_new_tokens=28, device="cpu", layers=layers,
                     positions=positions, model_key=llm.info.get("key"))
    everyone = data.valid + data.test
    vecs = sv.vectors(everyone)
    styles = [u.style for u in everyone]
    for position in positions:
        for layer in layers:
            res = probe(vecs[(position, layer)], styles)
            print(f"probe position={position:13s} layer={layer}: " + "  ".join(
                f"{a} {acc:.2f}/{maj:.2f}" for a, (acc, maj) in res.items()))
    print("(probe: 1-NN accuracy / majority-class rate, leave-one-out over "
          f"{len(everyone)} users)")


if __name__ == "__main__":
    main()
