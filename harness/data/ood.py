"""Out-of-distribution split protocols and their IID twins.

Why these shapes: an OOD claim ("method X is robust to shift S") only means something
next to the same method's score on an IID split of the same sizes, so every protocol here
takes ``iid_twin: true`` and then returns a uniformly random split with exactly the OOD
split's train/valid/test sizes (the leaderboard reports IID − OOD per method).

Shared rules (CausalDiffRec spec §3.4): a held-out event is only taken if its user and
item keep at least one training event (a CF model cannot score strangers); validation is
always an IID draw from the training pool, so model selection never sees the shift.

Each splitter returns ``(train, valid, test, info)``; ``info`` is a JSON-able dict the
runner stores next to the split and logs in ``split_diagnostics.json``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .interactions import Interactions

Split = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


def hold_out(data: Interactions, order: np.ndarray, n_take: int, user_left: np.ndarray,
             item_left: np.ndarray) -> np.ndarray:
    """Take up to ``n_take`` events from ``order`` (in that order), skipping any whose
    user or item would be left without a training event.

    ``user_left``/``item_left`` count the events still in the training pool and are
    decremented in place, so successive hold-outs (test, then validation) compose.
    """
    taken: list[int] = []
    users, items = data.user, data.item
    for idx in order.tolist():
        if len(taken) >= n_take:
            break
        u, i = users[idx], items[idx]
        if user_left[u] > 1 and item_left[i] > 1:
            user_left[u] -= 1
            item_left[i] -= 1
            taken.append(idx)
    return np.asarray(taken, dtype=np.int64)


def _counts(data: Interactions, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.bincount(data.user[pool], minlength=data.n_users),
            np.bincount(data.item[pool], minlength=data.n_items))


def _finish(data: Interactions, pool: np.ndarray, test: np.ndarray, n_valid: int,
            rng: np.random.Generator, user_left: np.ndarray, item_left: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IID validation from what ``pool`` keeps after ``test``; the rest is train."""
    remaining = np.setdiff1d(pool, test, assume_unique=True)
    valid = hold_out(data, rng.permutation(remaining), n_valid, user_left, item_left)
    train = np.setdiff1d(remaining, valid, assume_unique=True)
    return np.sort(train), np.sort(valid), np.sort(test)


def iid_twin(data: Interactions, sizes: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A uniformly random split with exactly ``sizes = (n_train, n_valid, n_test)``.

    Events the OOD split dropped are matched by dropping as many random events, so the
    twin trains on as much data as its OOD sibling.
    """
    n_train, n_valid, n_test = sizes
    rng = np.random.default_rng([seed, 1])  # a stream of its own: not the OOD split's draws
    pool = np.sort(rng.permutation(len(data))[: n_train + n_valid + n_test])
    user_left, item_left = _counts(data, pool)
    test = hold_out(data, rng.permutation(pool), n_test, user_left, item_left)
    return _finish(data, pool, test, n_valid, rng, user_left, item_left)


def _result(data: Interactions, parts: tuple[np.ndarray, np.ndarray, np.ndarray],
            info: dict[str, Any], twin: bool, seed: int) -> Split:
    sizes = [len(p) for p in parts]
    info = dict(info, ood_sizes=sizes)
    if twin:
        parts = iid_twin(data, sizes, seed)
        info.update(twin_of=info["shift"], shift="iid")
    return parts[0], parts[1], parts[2], info


def popularity_shift(data: Interactions, test_ratio: float = 0.2, valid_ratio: float = 0.1,
                     power: float = 1.0, seed: int = 2020, iid_twin: bool = False) -> Split:
    """Test positives drawn without replacement with weight ∝ 1/pop(item)^power, so test
    item popularity is flat while train stays skewed (DR-GNN's Yelp/Douban recipe)."""
    _check_ratios(test_ratio, valid_ratio)
    rng = np.random.default_rng(seed)
    n = len(data)
    pop = np.bincount(data.item, minlength=data.n_items).astype(np.float64)
    weight = pop[data.item] ** -power
    # Efraimidis–Spirakis: sorting by U^(1/w) descending is sequential weighted sampling
    # without replacement; log form for numerical safety.
    keys = np.log(rng.random(n)) / weight
    order = np.argsort(-keys, kind="stable")
    pool = np.arange(n)
    user_left, item_left = _counts(data, pool)
    test = hold_out(data, order, int(round(test_ratio * n)), user_left, item_left)
    parts = _finish(data, pool, test, int(round(valid_ratio * n)), rng, user_left, item_left)
    return _result(data, parts, {"shift": "popularity", "power": power}, iid_twin, seed)


def temporal_shift(data: Interactions, test_ratio: float = 0.2, valid_ratio: float = 0.1,
                   validation: str = "iid", seed: int = 2020, iid_twin: bool = False) -> Split:
    """Global chronological split: the last ``test_ratio`` of events is the test period
    (events of users/items unseen before it are dropped); validation is ``valid_ratio``
    of all events, drawn IID from the training period (``validation: chronological``
    takes the period just before the test instead)."""
    _check_ratios(test_ratio, valid_ratio)
    if validation not in ("iid", "chronological"):
        raise ValueError(f"temporal_shift: validation must be 'iid' or 'chronological', got '{validation}'")
    if data.timestamp is None:
        raise ValueError("temporal_shift needs a timestamp column")
    rng = np.random.default_rng(seed)
    n = len(data)
    order = np.argsort(data.timestamp, kind="stable")
    n_test, n_valid = int(round(test_ratio * n)), int(round(valid_ratio * n))
    before, after = order[: n - n_test], order[n - n_test:]
    if validation == "chronological":
        train = before[: len(before) - n_valid]
        valid = before[len(before) - n_valid:]
    else:
        user_left, item_left = _counts(data, before)
        valid = hold_out(data, rng.permutation(before), n_valid, user_left, item_left)
        train = np.setdiff1d(before, valid, assume_unique=True)
    seen_u = np.bincount(data.user[train], minlength=data.n_users) > 0
    seen_i = np.bincount(data.item[train], minlength=data.n_items) > 0
    known = lambda idx: np.sort(idx[seen_u[data.user[idx]] & seen_i[data.item[idx]]])  # noqa: E731
    test = known(after)
    info = {"shift": "temporal", "validation": validation,
            "test_events_dropped_unseen": int(len(after) - len(test)),
            "test_period_start": float(data.timestamp[after].min()) if len(after) else None}
    return _result(data, (np.sort(train), known(valid), test), info, iid_twin, seed)


def environment_shift(data: Interactions, feature: str = "age", threshold: Optional[float] = 45,
                      values: Optional[list] = None, minority_train_share: float = 0.2,
                      majority_train_share: float = 0.8, valid_ratio: float = 0.1,
                      seed: int = 2020, iid_twin: bool = False) -> Split:
    """Environments from a user feature: the minority environment (``feature >= threshold``,
    or ``feature in values`` for categorical features) keeps only ``minority_train_share``
    of its events for training and the rest is the test set; the majority environment
    keeps ``majority_train_share`` for training (its other events are unused)."""
    if feature not in data.user_features:
        known = ", ".join(data.user_features) or "none"
        raise ValueError(f"environment_shift: no user feature '{feature}' (known: {known})")
    for name, share in (("minority_train_share", minority_train_share),
                        ("majority_train_share", majority_train_share)):
        if not 0 < share <= 1:
            raise ValueError(f"environment_shift: {name} must be in (0, 1], got {share}")
    env_user = _environment(np.asarray(data.user_features[feature]), feature, threshold, values)
    rng = np.random.default_rng(seed)
    minority = np.flatnonzero(env_user[data.user])
    majority = np.flatnonzero(~env_user[data.user])
    if len(minority) == 0 or len(majority) == 0:
        raise ValueError(f"environment_shift: feature '{feature}' puts every event in one "
                         "environment; choose another threshold/values")
    kept_major = rng.permutation(majority)[: int(round(majority_train_share * len(majority)))]
    pool = np.sort(np.concatenate([kept_major, minority]))
    user_left, item_left = _counts(data, pool)
    n_test = int(round((1 - minority_train_share) * len(minority)))
    test = hold_out(data, rng.permutation(minority), n_test, user_left, item_left)
    parts = _finish(data, pool, test, int(round(valid_ratio * len(pool))), rng, user_left, item_left)
    info = {"shift": "environment", "feature": feature, "threshold": threshold, "values": values,
            "minority_users": int(env_user.sum()), "majority_users": int((~env_user).sum()),
            "minority_events": int(len(minority)), "majority_events": int(len(majority)),
            "train_minority_share": float(env_user[data.user[parts[0]]].mean()) if len(parts[0]) else 0.0}
    return _result(data, parts, info, iid_twin, seed)


def _environment(column: np.ndarray, feature: str, threshold: Optional[float],
                 values: Optional[list]) -> np.ndarray:
    """Boolean per user: True = the (minority) environment that forms the test set."""
    if values is not None:
        return np.isin(column.astype(str), [str(v) for v in values])
    if threshold is None:
        raise ValueError("environment_shift: give `threshold` (numeric feature) or `values`")
    try:
        numeric = column.astype(np.float64)
    except ValueError:
        raise ValueError(f"environment_shift: feature '{feature}' is not numeric; give "
                         f"`values:` (e.g. values: [F]) instead of `threshold`") from None
    return numeric >= threshold


def _check_ratios(test_ratio: float, valid_ratio: float) -> None:
    if not (0 < test_ratio < 1 and 0 <= valid_ratio < 1 and test_ratio + valid_ratio < 1):
        raise ValueError(f"need 0 < test_ratio, 0 <= valid_ratio, test_ratio + valid_ratio < 1; "
                         f"got test_ratio={test_ratio}, valid_ratio={valid_ratio}")
