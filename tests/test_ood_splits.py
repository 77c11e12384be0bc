"""OOD split protocols: no leakage, shift really present, IID twins of the same sizes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.data.diagnostics import gini, split_diagnostics
from harness.data import ood
from harness.data.synthetic import generate

PROTOCOLS = ["popularity_shift", "temporal_shift", "environment_shift"]


@pytest.fixture(scope="module")
def data():
    d = generate(n_users=150, n_items=200, n_interactions=5000, popularity_exponent=1.0, seed=3)
    rng = np.random.default_rng(0)
    d.user_features = {"age": rng.integers(18, 70, size=d.n_users).astype(str),
                       "gender": rng.choice(["M", "F"], size=d.n_users, p=[0.7, 0.3])}
    return d


def _split(data, name, **kw):
    train, valid, test, info = getattr(ood, name)(data, seed=7, **kw)
    return train, valid, test, info


@pytest.mark.parametrize("name", PROTOCOLS)
@pytest.mark.parametrize("twin", [False, True])
def test_parts_are_disjoint_and_test_users_items_are_seen(data, name, twin):
    train, valid, test, info = _split(data, name, iid_twin=twin)
    assert len(np.intersect1d(train, valid)) == 0
    assert len(np.intersect1d(train, test)) == 0
    assert len(np.intersect1d(valid, test)) == 0
    assert len(train) + len(valid) + len(test) <= len(data)
    seen_u = set(data.user[train].tolist())
    seen_i = set(data.item[train].tolist())
    for part in (valid, test):
        assert set(data.user[part].tolist()) <= seen_u
        assert set(data.item[part].tolist()) <= seen_i
    assert len(test) > 0 and len(valid) > 0
    json.dumps(info)  # stored with the split: must be JSON-able
    assert info["shift"] == ("iid" if twin else name.removesuffix("_shift").replace("_", ""))


@pytest.mark.parametrize("name", PROTOCOLS)
def test_iid_twin_has_exactly_the_ood_sizes_but_other_events(data, name):
    ood = _split(data, name)
    twin = _split(data, name, iid_twin=True)
    assert [len(p) for p in ood[:3]] == [len(p) for p in twin[:3]]
    assert not np.array_equal(ood[2], twin[2])
    assert twin[3]["twin_of"] == ood[3]["shift"]


def test_splits_are_deterministic_per_seed(data):
    a = _split(data, "popularity_shift")
    b = _split(data, "popularity_shift")
    c = ood.popularity_shift(data, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))
    assert not np.array_equal(a[2], c[2])


def test_popularity_shift_test_is_flat_and_train_skewed(data):
    train, valid, test, _ = _split(data, "popularity_shift")
    twin = _split(data, "popularity_shift", iid_twin=True)
    ood_d = split_diagnostics(data, train, valid, test)
    iid_d = split_diagnostics(data, *twin[:3])
    # test item counts much flatter than on the IID twin, train keeps its long tail
    assert ood_d["test_item_gini"] < iid_d["test_item_gini"] - 0.15
    assert ood_d["test_pop_max_over_median"] < iid_d["test_pop_max_over_median"]
    assert ood_d["train_item_gini"] > ood_d["test_item_gini"]
    # test events point at far less popular (in train) items than IID test events do
    assert ood_d["test_mean_train_pop"] < 0.7 * iid_d["test_mean_train_pop"]
    assert abs(len(test) - 0.2 * len(data)) <= 0.02 * len(data)


def test_temporal_shift_tests_the_latest_events(data):
    train, valid, test, info = _split(data, "temporal_shift")
    ts = data.timestamp
    assert ts[test].min() >= ts[train].max()
    assert ts[test].min() >= ts[valid].max()
    # IID validation: drawn from the whole training period, not its end
    assert ts[valid].min() < np.median(ts[train])
    chrono = _split(data, "temporal_shift", validation="chronological")
    assert ts[chrono[1]].min() >= ts[chrono[0]].max()
    assert info["test_events_dropped_unseen"] >= 0


def test_environment_shift_minority_forms_test_and_is_rare_in_train(data):
    train, valid, test, info = _split(data, "environment_shift", feature="age", threshold=50)
    minority = data.user_features["age"].astype(float) >= 50
    assert minority[data.user[test]].all()
    share_all = minority[data.user].mean()
    assert minority[data.user[train]].mean() < 0.5 * share_all
    assert info["minority_users"] == int(minority.sum())
    cat = _split(data, "environment_shift", feature="gender", threshold=None, values=["F"])
    assert (data.user_features["gender"][data.user[cat[2]]] == "F").all()


def test_bad_options_name_what_is_wrong(data):
    with pytest.raises(ValueError, match="no user feature 'height'"):
        _split(data, "environment_shift", feature="height")
    with pytest.raises(ValueError, match="not numeric"):
        _split(data, "environment_shift", feature="gender", threshold=1)
    with pytest.raises(ValueError, match="test_ratio"):
        _split(data, "popularity_shift", test_ratio=1.2)
    with pytest.raises(ValueError, match="validation must be"):
        _split(data, "temporal_shift", validation="future")


def test_gini():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)


def test_runner_logs_splitter_diagnostics_and_reloads_them_from_cache(workdir, registry):
    from harness.runner import prepare_dataset
    from harness.suite import DatasetEntry

    entry = DatasetEntry.model_validate({
        "name": "synthetic", "params": {"n_users": 60, "n_items": 80, "n_interactions": 1500},
        "split": {"strategy": "popularity_shift", "options": {"iid_twin": True}}})
    first = prepare_dataset(entry, "topk", registry, workdir / "cache")
    again = prepare_dataset(entry, "topk", registry, workdir / "cache")
    assert first.diagnostics == again.diagnostics
    assert first.diagnostics["split"]["twin_of"] == "popularity"
    assert first.diagnostics["overlapping_events"] == 0
    assert "test_item_gini" in first.diagnostics
    # an old-style 3-tuple splitter still works and gets the generic diagnostics only
    plain = DatasetEntry.model_validate({"name": "synthetic", "params": {"n_users": 60}})
    ds = prepare_dataset(plain, "topk", registry, workdir / "cache")
    assert "split" not in ds.diagnostics and "test_item_gini" in ds.diagnostics
