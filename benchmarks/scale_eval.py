"""Full-ranking evaluation at scale: BPR-MF embeddings, 10k / 100k / 1M users x 50k items.

    python benchmarks/scale_eval.py [--users 10000,100000,1000000] [--items 50000] [--k 20]

Embeddings are random (training at 1M users is not the point): this measures the
harness's top-K path (``harness.scoring.full_ranking_topk``: chunked scoring, exclusion
of training items, exact id tie-break) against a reference measured in the same run, a
plain torch matmul + ``torch.topk`` over the same embeddings in chunks of the same size
(the machine's own limit for this work; it masks nothing). Prints per size: seconds,
seconds per 1k users (linear time => flat), ratio to the reference, and peak RSS growth
(bounded memory => flat in users). ``--reference-users`` caps the reference at the
largest sizes to keep the run near 10 minutes on 2 cores; the ratio then uses the
reference's per-user time.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.scoring import full_ranking_topk  # noqa: E402


class MFScores:
    """The BPR-MF scoring interface over given embeddings."""

    def __init__(self, user: torch.Tensor, item: torch.Tensor) -> None:
        self.user, self.item = user, item

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user[users] @ self.item.T


def reference_topk(user: torch.Tensor, item: torch.Tensor, n_users: int, k: int, chunk: int) -> None:
    with torch.no_grad():
        for start in range(0, n_users, chunk):
            torch.topk(user[start:start + chunk] @ item.T, k, dim=1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", default="10000,100000,1000000")
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--train-per-user", type=int, default=20, help="masked training items per user")
    ap.add_argument("--bench-users", type=int, default=None,
                    help="score at most this many users per size (timing extrapolated linearly)")
    ap.add_argument("--reference-users", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    item = torch.randn(args.items, args.dim, generator=gen) / args.dim ** 0.5
    print(f"items={args.items} dim={args.dim} k={args.k} chunk={args.chunk} threads={args.threads}")
    print(f"{'users':>9} {'scored':>9} {'bench s':>9} {'s/1k users':>11} {'ref s/1k':>9} "
          f"{'ratio':>6} {'RSS growth MB':>14}")
    for n_users in [int(x) for x in args.users.split(",")]:
        scored = min(n_users, args.bench_users or n_users)
        user = torch.randn(scored, args.dim, generator=gen) / args.dim ** 0.5
        rows = np.repeat(np.arange(scored), args.train_per_user)
        cols = rng.integers(0, args.items, size=len(rows))
        exclude = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(scored, args.items))
        model = MFScores(user, item)
        rss0 = peak_rss_mb()
        t0 = time.perf_counter()
        full_ranking_topk(model, np.arange(scored), exclude, args.k, chunk_size=args.chunk)
        bench_s = time.perf_counter() - t0
        growth = peak_rss_mb() - rss0
        ref_users = min(scored, args.reference_users)
        t0 = time.perf_counter()
        reference_topk(user, item, ref_users, args.k, args.chunk)
        ref_s = time.perf_counter() - t0
        per_k, ref_per_k = bench_s / scored * 1000, ref_s / ref_users * 1000
        print(f"{n_users:>9} {scored:>9} {bench_s * n_users / scored:>9.1f} {per_k:>11.3f} "
              f"{ref_per_k:>9.3f} {per_k / ref_per_k:>6.2f} {growth:>14.0f}", flush=True)
        del user, exclude, model


if __name__ == "__main__":
    main()
