"""Split protocols. Each returns (train, valid, test) index arrays into the events.

A split is a pure function of the events and its parameters (seed included), so its id
is a hash of both and every method in a suite sees exactly the same split. The harness's
core plugin registers these (and :mod:`.ood`'s) through ``bench_register_splits``; a
third-party plugin registers its own the same way (:class:`harness.api.SplitSpec`).
"""
from __future__ import annotations

import numpy as np

from .interactions import Interactions

Indices = tuple[np.ndarray, np.ndarray, np.ndarray]


def _by_user(data: Interactions, order: np.ndarray) -> list[np.ndarray]:
    """Event indices grouped by user, each group in ``order``."""
    ordered_users = data.user[order]
    sort = np.argsort(ordered_users, kind="stable")
    grouped = order[sort]
    bounds = np.searchsorted(ordered_users[sort], np.arange(data.n_users + 1))
    return [grouped[bounds[u]:bounds[u + 1]] for u in range(data.n_users)]


def ratio_counts(total: int, ratios: list[float]) -> list[int]:
    """Split sizes as RecBole 1.2.1 computes them (``_calcu_split_ids``): valid/test get
    one event where their share would round to zero, so parity runs see the same sizes."""
    ratios = [r / sum(ratios) for r in ratios]
    cnt = [int(r * total) for r in ratios]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def random_ratio(data: Interactions, ratios=(0.8, 0.1, 0.1), seed: int = 2020) -> Indices:
    """Per-user random split by ratio (RecBole's ``RS`` + ``RO`` + group_by user)."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for events in _by_user(data, rng.permutation(len(data))):
        if len(events) == 0:
            continue
        start = 0
        for p, c in enumerate(ratio_counts(len(events), list(ratios))):
            parts[p].append(events[start:start + c])
            start += c
    return tuple(np.sort(np.concatenate(p)) if p else np.empty(0, np.int64) for p in parts)  # type: ignore


def _time_order(data: Interactions) -> np.ndarray:
    if data.timestamp is None:
        raise ValueError("this split needs a timestamp column")
    return np.argsort(data.timestamp, kind="stable")


def leave_one_out(data: Interactions, seed: int = 0) -> Indices:
    """Per user by time: last event to test, second-to-last to validation (users need
    at least 3 events to contribute to validation and test)."""
    train, valid, test = [], [], []
    for events in _by_user(data, _time_order(data)):
        if len(events) >= 3:
            train.append(events[:-2]); valid.append(events[-2:-1]); test.append(events[-1:])
        else:
            train.append(events)
    cat = lambda p: np.sort(np.concatenate(p)) if p else np.empty(0, np.int64)  # noqa: E731
    return cat(train), cat(valid), cat(test)


def temporal(data: Interactions, ratios=(0.8, 0.1, 0.1), seed: int = 0) -> Indices:
    """Global chronological split; valid/test events of users or items unseen in train
    are dropped (a CF model cannot score them)."""
    order = _time_order(data)
    n_train, n_valid, _ = ratio_counts(len(data), list(ratios))
    train = order[:n_train]
    seen_u = np.zeros(data.n_users, bool); seen_u[data.user[train]] = True
    seen_i = np.zeros(data.n_items, bool); seen_i[data.item[train]] = True
    keep = lambda idx: np.sort(idx[seen_u[data.user[idx]] & seen_i[data.item[idx]]])  # noqa: E731
    return np.sort(train), keep(order[n_train:n_train + n_valid]), keep(order[n_train + n_valid:])

