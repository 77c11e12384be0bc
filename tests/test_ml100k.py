"""MovieLens-100k end to end: the real data, the real protocol (needs `bench data get ml-100k`)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.registry import Registry
from harness.runner import prepare_dataset, run_suite
from harness.suite import validate_suite


@pytest.fixture(scope="module")
def ml100k_suite():
    return {
        "suite": "ml100k-check",
        "datasets": [{"name": "ml-100k", "split": {"strategy": "random_ratio", "seed": 2020}}],
        "methods": [{"name": "pop"}, {"name": "bpr_mf", "params": {"epochs": 12, "patience": 3}}],
        "seeds": [0],
        "metrics": ["ndcg@10", "recall@20"],
    }


def test_ml100k_loads_with_side_information():
    from harness.data.sources import load_ml100k

    data = load_ml100k()
    assert (data.n_users, data.n_items, len(data)) == (943, 1682, 100000)
    assert set(data.user_features) >= {"age", "gender", "occupation"}
    assert data.item_features["movie_title"][0] == "Toy Story"


def test_split_is_shared_and_identified(workdir, ml100k_suite):
    reg = Registry()
    suite, cells = validate_suite(ml100k_suite, reg)
    a = prepare_dataset(cells[0].dataset, cells[0].task, reg)
    b = prepare_dataset(cells[1].dataset, cells[1].task, reg)  # second call reads the cache
    assert a.split_id == b.split_id
    assert np.array_equal(a.test_idx, b.test_idx)
    assert a.diagnostics["n_train"] + a.diagnostics["n_valid"] + a.diagnostics["n_test"] == 100000


def test_bpr_mf_beats_pop(workdir, ml100k_suite):
    reg = Registry()
    suite, cells = validate_suite(ml100k_suite, reg)
    results = {r.cell.method.key: r for r in run_suite(suite, cells, reg)}
    assert all(r.status == "finished" for r in results.values())
    assert results["bpr_mf"].metrics["ndcg@10"] > results["pop"].metrics["ndcg@10"] * 1.3
