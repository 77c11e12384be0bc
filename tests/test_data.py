"""Atomic-file reader, GroupLens conversion, preprocessing and split protocols."""
from __future__ import annotations

import numpy as np
import pytest

from harness.api import BenchError
from harness.data.atomic import load_atomic
from harness.data.preprocess import filter_min_rating, kcore
from harness.data.sources import load_local, load_ml100k
from harness.data.splits import leave_one_out, random_ratio, ratio_counts, temporal
from harness.data.synthetic import generate


def _write_atomic(root):
    (root / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti1\t5\t10\nu1\ti2\t3\t11\nu2\ti2\t4\t12\nu3\ti3\t1\t13\n")
    (root / "toy.user").write_text("user_id:token\tage:token\nu1\t20\nu2\t30\nu3\t40\nu9\t50\n")
    (root / "toy.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\ni1\tA Film\tDrama\n"
        "i2\tB\tComedy Drama\ni3\tC\tHorror\n")


def test_atomic_reader(tmp_path):
    _write_atomic(tmp_path)
    data = load_atomic(tmp_path, "toy")
    assert (data.n_users, data.n_items, len(data)) == (3, 3, 4)  # u9 has no events: dropped
    assert list(data.user_tokens) == ["u1", "u2", "u3"]
    assert data.rating.tolist() == [5, 3, 4, 1]
    assert list(data.user_features["age"]) == ["20", "30", "40"]
    assert list(data.item_features["class"]) == ["Drama", "Comedy Drama", "Horror"]


def test_atomic_reader_rejects_untyped_header(tmp_path):
    (tmp_path / "bad.inter").write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(BenchError, match="no ':type' suffix"):
        load_atomic(tmp_path, "bad")


def test_grouplens_layout_matches_atomic_columns(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n2\t10\t3\t200\n1\t20\t4\t300\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    genres = ["0"] * 19
    g1, g2 = genres.copy(), genres.copy()
    g1[8] = "1"  # Drama
    g2[5] = g2[1] = "1"  # Action, Comedy
    (tmp_path / "u.item").write_text(
        "10|Heat (1995)|01-Jan-1995||http://x|" + "|".join(g1) + "\n"
        "20|Toy Story (1995)|01-Jan-1995||http://y|" + "|".join(g2) + "\n")
    data = load_local(tmp_path, "ml-100k")
    assert (data.n_users, data.n_items, len(data)) == (2, 2, 3)
    assert list(data.item_features["movie_title"]) == ["Heat", "Toy Story"]
    assert list(data.item_features["release_year"]) == ["1995", "1995"]
    assert list(data.item_features["class"]) == ["Drama", "Action Comedy"]
    assert list(data.user_features["occupation"]) == ["technician", "other"]


def test_missing_ml100k_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_HOME", str(tmp_path))
    with pytest.raises(BenchError, match="bench data get ml-100k"):
        load_ml100k()


def test_url_without_checksum_is_refused():
    with pytest.raises(BenchError, match="SHA-256"):
        load_ml100k(url="https://example.invalid/ml-100k.zip")


def test_min_rating_and_kcore():
    data = generate(n_users=50, n_items=60, n_interactions=800, seed=3)
    pos = filter_min_rating(data, 4)
    assert pos.rating.min() >= 4
    core = kcore(data, 5)
    assert np.bincount(core.user).min() >= 5 and np.bincount(core.item).min() >= 5


@pytest.mark.parametrize("total", [1, 2, 5, 9, 10, 23, 100])
def test_ratio_counts_sum_and_recbole_rounding(total):
    counts = ratio_counts(total, [0.8, 0.1, 0.1])
    assert sum(counts) == total
    if total >= 10:
        assert counts[1] == int(0.1 * total)


def _disjoint_cover(n, parts):
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == n


def test_random_ratio_split_is_a_partition_and_seeded():
    data = generate(n_users=40, n_items=50, n_interactions=800, seed=0)
    a = random_ratio(data, seed=1)
    b = random_ratio(data, seed=1)
    c = random_ratio(data, seed=2)
    _disjoint_cover(len(data), a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[2], c[2])


def test_leave_one_out_takes_last_events_by_time():
    data = generate(n_users=30, n_items=40, n_interactions=400, seed=0)
    train, valid, test = leave_one_out(data)
    _disjoint_cover(len(data), (train, valid, test))
    for idx in test:
        u = data.user[idx]
        assert data.timestamp[idx] == data.timestamp[data.user == u].max()
    for idx in valid:
        u = data.user[idx]
        later = data.timestamp[test][data.user[test] == u]
        assert (data.timestamp[idx] <= later).all()


def test_temporal_split_is_chronological_and_drops_unknown_users():
    data = generate(n_users=30, n_items=40, n_interactions=400, seed=0)
    train, valid, test = temporal(data)
    assert data.timestamp[train].max() < data.timestamp[test].min()
    assert set(data.user[test]) <= set(data.user[train])
    assert set(data.item[test]) <= set(data.item[train])
