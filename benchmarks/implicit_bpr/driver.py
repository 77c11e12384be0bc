"""Trains `implicit`'s CPU BPR on a bench training matrix; runs in the implicit virtualenv.

Executed by run.py inside `.bench_cache/implicit-venv` (never imported by bench). Reads a
JSON job on argv[1]: the training matrix (a .npz of CSR arrays, users x items), factors,
learning rate, regularisation, epochs, seed, threads, output folder. After every epoch it
saves the current user and item factors (``epoch_NNN.npz``) so bench's own scorer can
evaluate them (validation for early stopping, test for the best epoch): the evaluation
protocol is bench's, not implicit's. Prints one line ``RESULT {json}`` with per-epoch
wall and CPU seconds of training alone (the time spent saving factors is excluded).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    from threadpoolctl import threadpool_limits

    import implicit
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    arrays = np.load(job["train"])
    train = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                          shape=tuple(arrays["shape"]))
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    model = BayesianPersonalizedRanking(
        factors=job["factors"], learning_rate=job["lr"], regularization=job["regularization"],
        iterations=job["epochs"], num_threads=job["threads"], random_state=job["seed"],
        verify_negative_samples=True, dtype=np.float32)
    wall, cpu = [], []
    marks = [time.perf_counter(), time.process_time()]

    def after_epoch(epoch, *_):
        # training of this epoch ends here; saving the factors is not charged to it
        now, now_cpu = time.perf_counter(), time.process_time()
        wall.append(now - marks[0])
        cpu.append(now_cpu - marks[1])
        np.savez(out / f"epoch_{epoch:03d}.npz", user=model.user_factors, item=model.item_factors)
        marks[:] = [time.perf_counter(), time.process_time()]

    with threadpool_limits(job["threads"]):
        model.fit(train, show_progress=False, callback=after_epoch)
    print("RESULT " + json.dumps({"implicit": implicit.__version__, "numpy": np.__version__,
                                  "epoch_seconds": wall, "epoch_cpu_seconds": cpu,
                                  "factors_shape": list(model.item_factors.shape)}), flush=True)


if __name__ == "__main__":
    main()
