"""Tiny data and settings shared by the HNLMRec tests (a synthetic dataset with
MovieLens-like side information, a 2-layer d=32 LLM, a handful of steps)."""
from __future__ import annotations

import numpy as np
import torch

from harness.context import Context
from harness.data.dataset import Dataset
from harness.data.splits import random_ratio
from harness.data.synthetic import generate

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]


def tiny_dataset(seed: int = 0) -> Dataset:
    data = generate(n_users=24, n_items=40, n_interactions=400, seed=seed)
    rng = np.random.default_rng(seed)
    data.item_features = {
        "movie_title": np.array([f"Movie {w} {i}" for i, w in
                                 zip(range(data.n_items), rng.choice(["Red", "Blue", "Dark"], data.n_items))],
                                dtype=object),
        "release_year": np.array([str(1960 + i % 40) for i in range(data.n_items)], dtype=object),
        "class": np.array([" ".join(sorted(set(rng.choice(GENRES, 2)))) for _ in range(data.n_items)],
                          dtype=object)}
    data.user_features = {
        "age": np.array([str(18 + u % 50) for u in range(data.n_users)], dtype=object),
        "gender": np.array(["M" if u % 2 else "F" for u in range(data.n_users)], dtype=object),
        "occupation": np.array([["writer", "student", "engineer"][u % 3] for u in range(data.n_users)],
                               dtype=object)}
    train, valid, test = random_ratio(data, (0.8, 0.1, 0.1), seed=1)
    return Dataset("tiny", "topk", data, train, valid, test, f"tiny-{seed}")


TINY = dict(dim=8, epochs=1, batch_size=128, n_layers=1, negatives_per_user=2, gen_max_tokens=6,
            pretrain_epochs=1, lora_steps=3, lora_batch_size=4, dns_candidates=4,
            adapter_hidden=8, gen_batch_size=64,
            llm={"layers": 2, "dim": 32, "heads": 2, "sft_steps": 5, "sft_batch_size": 8})


def ctx(registry, tmp_path, seed: int = 0) -> Context:
    return Context(registry=registry, seed=seed, metrics=["ndcg@10"], valid_metric="ndcg@10",
                   device=torch.device("cpu"), cache_dir=tmp_path, workdir=tmp_path / "cells")
