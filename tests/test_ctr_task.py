"""The ctr task: temporal split order, leak-free prompt histories, warm/cold flags and
hand-checked AUC / UAUC / log loss (scikit-learn underneath)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.data.interactions import Interactions
from harness.tasks.ctr import ctr_metrics, liked_histories, make_ctr, temporal_split

WORDS = ["Red", "Blue", "Night", "Day", "River", "Stone", "Wind"]
NOUNS = ["City", "Road", "Dream", "House", "Game"]
GENRES = ["Drama", "Comedy", "Action", "Sci-Fi"]


def toy_interactions(n_users: int = 30, n_items: int = 40, n_events: int = 700,
                     seed: int = 0) -> Interactions:
    """Unique (user, item) pairs, coarse timestamps (many ties), ratings 1-5, titles."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n_events, replace=False)
    titles = np.array([f"{WORDS[i % 7]} {NOUNS[i % 5]}" for i in range(n_items)])
    years = np.array([str(1990 + i % 9) for i in range(n_items)])
    genres = np.array([" ".join(GENRES[: 1 + i % 3]) for i in range(n_items)])
    return Interactions(pairs // n_items, pairs % n_items, n_users, n_items,
                        rng.integers(1, 6, n_events).astype(np.float32),
                        rng.integers(0, 150, n_events).astype(np.float64),
                        item_features={"movie_title": titles, "release_year": years,
                                       "class": genres})


@pytest.fixture(scope="module")
def toy():
    return toy_interactions()


def test_no_train_time_after_valid_nor_valid_after_test(toy):
    data = make_ctr(toy, n_train=200)
    for train in (data.cf_train, data.train):
        assert train.timestamp.max() <= data.valid.timestamp.min()
    assert data.valid.timestamp.max() <= data.test.timestamp.min()
    assert len(data.cf_train) + len(data.valid) + len(data.test) == len(toy)
    tr, va, te = temporal_split(toy.timestamp)
    assert (len(tr), len(va), len(te)) == (560, 70, 70)


def test_history_holds_neither_the_target_nor_a_later_event(toy):
    data = make_ctr(toy, history_len=4)
    when = {(int(u), int(i)): float(t) for u, i, t in zip(toy.user, toy.item, toy.timestamp)}
    liked = {(int(u), int(i)) for u, i, r in zip(toy.user, toy.item, toy.rating) if r >= 4}
    checked = 0
    for part in (data.cf_train, data.valid, data.test):
        for k in range(len(part)):
            u, target, t = int(part.user[k]), int(part.item[k]), float(part.timestamp[k])
            hist = part.history[k]
            assert len(hist) <= 4 and target not in hist
            for h in hist:
                assert (u, h) in liked and when[(u, h)] < t  # strictly earlier, liked
            times = [when[(u, h)] for h in hist]
            assert times == sorted(times)  # oldest first, so the last ones are the latest
            # it is the *last* history_len liked items before t
            earlier = sorted(when[(u, i)] for (uu, i) in liked if uu == u and when[(u, i)] < t)
            assert times == earlier[-4:] if earlier else times == []
            checked += bool(hist)
            prompt = data.prompt(part, k)
            history_text = prompt.split("following movies: ")[1].split(". Leverage")[0]
            assert f'"{data.titles[target]}"' not in history_text or any(
                data.titles[h] == data.titles[target] for h in hist)
    assert checked > 100


def test_same_second_events_are_not_history():
    user = np.array([0, 0, 0])
    item = np.array([1, 2, 3])
    liked = np.array([True, True, True])
    ts = np.array([5.0, 5.0, 6.0])
    assert liked_histories(user, item, liked, ts, 10) == [[], [], [1, 2]]


def test_warm_means_user_and_item_seen_in_train(toy):
    data = make_ctr(toy)
    users, items = set(data.cf_train.user.tolist()), set(data.cf_train.item.tolist())
    for part in (data.valid, data.test):
        expect = [(u in users and i in items) for u, i in zip(part.user.tolist(), part.item.tolist())]
        assert part.warm.tolist() == expect


def test_auc_uauc_logloss_equal_a_hand_computed_example():
    # user 0: labels 1,0,1 scores .9,.1,.4 -> AUC 1; user 1: 0,1,0 / .8,.3,.2 -> 0.5;
    # user 2 has only positives -> no AUC, left out of UAUC
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.4, 0.8, 0.3, 0.2, 0.7, 0.05])
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    warm = np.array([1, 1, 1, 0, 0, 0, 1, 1], bool)
    m, per_user = ctr_metrics(labels, scores, users, warm)
    # 5 positives x 3 negatives: .9 beats 3, .4/.3/.7 beat 2 each, .05 beats 0 -> 9/15
    assert m["auc"] == pytest.approx(9 / 15)
    assert m["uauc"] == pytest.approx(0.75)
    assert per_user["uauc"] == {"0": pytest.approx(1.0), "1": pytest.approx(0.5)}
    sig = 1 / (1 + np.exp(-scores))
    ll = -np.mean(labels * np.log(sig) + (1 - labels) * np.log(1 - sig))
    assert m["logloss"] == pytest.approx(ll)
    # warm: positives .9 .4 .7 .05 against the one negative .1 -> 3/4
    assert m["auc_warm"] == pytest.approx(0.75)
    assert m["uauc_warm"] == pytest.approx(1.0) and m["uauc_cold"] == pytest.approx(0.5)
    assert m["auc_cold"] == pytest.approx(0.5)
    assert math.isfinite(m["logloss_cold"])


def test_loads_a_local_grouplens_copy(tmp_path):
    """`params: {path: DIR}` reads the GroupLens layout (u.data, u.item in latin-1)."""
    from harness.tasks.ctr import load_ml100k_ctr

    rng = np.random.default_rng(0)
    rows = [(u, i, int(rng.integers(1, 6)), 880000000 + 37 * k)
            for k, (u, i) in enumerate((u, i) for u in range(1, 9) for i in range(1, 13))]
    (tmp_path / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    flags = lambda i: "|".join("1" if g == i % 19 else "0" for g in range(19))  # noqa: E731
    (tmp_path / "u.item").write_bytes("".join(
        f"{i}|Caf\xe9 Story {i} (199{i % 10})|01-Jan-1995||http://x|{flags(i)}\n"
        for i in range(1, 13)).encode("latin-1"))
    data = load_ml100k_ctr(path=str(tmp_path), history_len=2)
    assert len(data.cf_train) + len(data.valid) + len(data.test) == len(rows)
    assert data.titles[0] == "Café Story 1 (1991)"
    assert data.genres[0] == ["Action"]
    assert data.description(0) == "Café Story 1 (1991) is a Action movie."
    assert data.cf_train.timestamp.max() <= data.valid.timestamp.min()
