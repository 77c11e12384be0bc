"""Generated semantic negatives are cached per (LLM, data, seed, settings): a repeated
cell loads them instead of regenerating; another seed or route rebuilds."""
from __future__ import annotations

import torch

from harness.context import seed_everything
from harness.registry import Registry
from plugins import hnlmrec
from plugins.hnlmrec import semantic
from plugins.hnlmrec.params import HNLMRecParams
from tests.hnlmrec_fixtures import TINY, ctx, tiny_dataset


def test_second_build_comes_from_cache_without_touching_the_llm(tmp_path, monkeypatch):
    ds = tiny_dataset()
    p = HNLMRecParams(**TINY, route="A")
    first = semantic.build(ds, p, seed=0, cache_dir=tmp_path)
    assert first.source == "built" and first.vectors.shape[0] == first.info["slots"]
    assert len(first.pair_keys) == len(ds.train_pairs()[0])

    def boom(*a, **k):
        raise AssertionError("the LLM was used although the result is cached")

    monkeypatch.setattr(semantic, "load_llm", boom)
    monkeypatch.setattr(semantic, "generate", boom)
    again = semantic.build(ds, p, seed=0, cache_dir=tmp_path)
    assert again.source == "cache"
    assert torch.equal(again.vectors, first.vectors) and again.texts == first.texts
    monkeypatch.undo()
    other = semantic.build(ds, p, seed=1, cache_dir=tmp_path)
    assert other.source == "built"


def test_route_b_cell_is_reproducible_and_reuses_its_cache(tmp_path):
    ds = tiny_dataset()
    registry = Registry()
    params = dict(TINY, route="B", backbone="bpr_mf")
    seed_everything(0)  # as the runner does before every cell
    a = hnlmrec.bench_train("hnlmrec", params, ds, ctx(registry, tmp_path))
    seed_everything(0)
    b = hnlmrec.bench_train("hnlmrec", params, ds, ctx(registry, tmp_path))
    assert a.history["semantic_from_cache"] == 0.0 and b.history["semantic_from_cache"] == 1.0
    assert a.history["lora_trainable_params"] > 0
    users = torch.arange(ds.n_users)
    assert torch.equal(a.model.score(users), b.model.score(users))  # same seed, same numbers (cache or not)
