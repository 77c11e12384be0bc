"""Split diagnostics computed for every split, whatever protocol made it.

Why generic: an OOD claim needs evidence that the split is shifted (test item popularity
flat vs. a skewed train, how many test users survive), and the same figures on an IID
split are the reference, so they are computed identically for every splitter.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .interactions import Interactions


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = flat, → 1 = concentrated)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def split_diagnostics(data: Interactions, train: np.ndarray, valid: np.ndarray,
                      test: np.ndarray) -> dict[str, Any]:
    train_pop = np.bincount(data.item[train], minlength=data.n_items)
    test_cnt = np.bincount(data.item[test], minlength=data.n_items)
    in_test = test_cnt > 0
    train_users = np.bincount(data.user[train], minlength=data.n_users) > 0
    test_users = np.unique(data.user[test])
    out: dict[str, Any] = {
        "test_items": int(in_test.sum()),
        "test_users_with_train": int(train_users[test_users].sum()),
        # ranking metrics rise with positives per user: compare twins on this too
        "test_events_per_user": float(len(test) / max(len(test_users), 1)),
        "train_item_gini": gini(train_pop[train_pop > 0]),
        "test_item_gini": gini(test_cnt[in_test]),
        # flatness: max/median of per-item test counts (spec §3.4 asks for ≲ 5)
        "test_pop_max_over_median": float(test_cnt[in_test].max() / np.median(test_cnt[in_test]))
        if in_test.any() else float("nan"),
        # mean training popularity of the items test events point at: far lower on a
        # popularity-shift test than on its IID twin
        "test_mean_train_pop": float(train_pop[data.item[test]].mean()) if len(test) else float("nan"),
        "train_mean_train_pop": float(train_pop[data.item[train]].mean()) if len(train) else float("nan"),
    }
    leaks = len(np.intersect1d(train, test)) + len(np.intersect1d(train, valid)) + \
        len(np.intersect1d(valid, test))
    out["overlapping_events"] = int(leaks)
    return out
