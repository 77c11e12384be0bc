"""Paired per-user significance tests against a baseline, Holm-corrected.

The t-test is ranx's own ``paired_student_t_test`` (what ``ranx.compare`` runs); the
Fisher randomisation test follows ranx's but is reimplemented with a seeded numpy
generator, because ranx's is not reproducible (see :func:`fisher_randomisation`).
Both run on per-user values rather than through ``ranx.compare`` because the harness already stored ranx's per-user scores for every
seed, and averaging a user's score over seeds before pairing tests the method, not one
lucky seed; ``compare`` would re-evaluate one run per method from a qrels file.

Holm is implemented here: neither scipy (only Benjamini-Hochberg/Yekutieli in
``false_discovery_control``) nor ranx corrects for multiple comparisons, and statsmodels
is not a dependency.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .api import BenchError

TESTS = ("student", "fisher")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given), monotone and capped at 1.

    Step-down: the i-th smallest p is multiplied by (m - i) and the running maximum is
    kept, so rejecting ``adjusted <= alpha`` is Holm's procedure at level alpha.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("holm() takes a flat sequence of p-values")
    if np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


@dataclass
class Comparison:
    method: str
    metric: str
    p_value: float
    p_holm: float = float("nan")
    delta: float = 0.0  # mean(method) - mean(baseline) over the paired users
    n_users: int = 0

    def significant(self, alpha: float) -> bool:
        return bool(self.p_holm <= alpha)


def paired_test(control: np.ndarray, treatment: np.ndarray, test: str = "student",
                n_permutations: int = 10000, seed: int = 42) -> float:
    """Two-sided p-value of a paired test through ranx."""
    from ranx.statistical_tests import paired_student_t_test

    if test == "student":
        if np.allclose(control, treatment):
            return 1.0  # identical scores: scipy would return nan
        p, _ = paired_student_t_test(control, treatment)
    elif test == "fisher":
        p = fisher_randomisation(control, treatment, n_permutations, seed)
    else:
        raise BenchError(f"unknown significance test '{test}'; choose one of {', '.join(TESTS)}.")
    return float(p)


def fisher_randomisation(control: np.ndarray, treatment: np.ndarray, n_permutations: int = 10000,
                         seed: int = 42, chunk: int = 1000) -> float:
    """Two-sided paired randomisation test (Fisher; Smucker et al. 2007), as ranx's
    ``fisher_randomization_test``: under H0 each user's pair may swap, i.e. each
    difference may flip sign. Reimplemented because ranx's version draws inside a
    parallel numba loop from per-thread streams its seed does not reach, so its p-value
    changes from call to call (measured: 0.061, 0.060, 0.055, 0.063 on one input).
    Returns (count + 1) / (n + 1), the exact-size permutation p-value (never 0).
    """
    d = np.asarray(treatment, dtype=np.float64) - np.asarray(control, dtype=np.float64)
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < n_permutations:
        n = min(chunk, n_permutations - done)
        signs = rng.integers(0, 2, size=(n, len(d)), dtype=np.int8) * 2 - 1
        hits += int((np.abs(signs @ d) / len(d) >= observed - 1e-12).sum())
        done += n
    return (hits + 1) / (n_permutations + 1)


def seed_mean(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-user mean over seeds, over the users every seed scored."""
    users = set(per_seed[0])
    for d in per_seed[1:]:
        users &= set(d)
    return {u: float(np.mean([d[u] for d in per_seed])) for u in users}


def compare_to_baseline(per_user: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]],
                        baseline: str, metrics: Sequence[str], test: str = "student"
                        ) -> list[Comparison]:
    """``per_user[method][metric]`` is a list (one per seed) of {user: value}.

    One family per metric: the p-values of all methods against the baseline on that
    metric are Holm-corrected together.
    """
    if baseline not in per_user:
        raise BenchError(f"baseline '{baseline}' has no per-user results to compare against.")
    out: list[Comparison] = []
    for metric in metrics:
        if metric not in per_user[baseline]:
            continue
        base = seed_mean(per_user[baseline][metric])
        family = []
        for method, by_metric in per_user.items():
            if method == baseline or metric not in by_metric:
                continue
            treat = seed_mean(by_metric[metric])
            users = sorted(set(base) & set(treat))
            if len(users) < 2:
                continue
            b = np.array([base[u] for u in users])
            t = np.array([treat[u] for u in users])
            family.append(Comparison(method, metric, paired_test(b, t, test),
                                     delta=float(t.mean() - b.mean()), n_users=len(users)))
        for c, adj in zip(family, holm([c.p_value for c in family])):
            c.p_holm = adj
        out += family
    return out
