"""Paired significance tests against a baseline, Holm-corrected.

The unit of a test is a choice (``UNITS``), and the default is the **training run**: a
method's result is a sample over training seeds, so a test over users of seed-averaged
scores lets one lucky training run look highly significant. ``seeds`` pairs the two arms'
runs by seed and runs a paired t-test on their per-seed means (scipy); ``bootstrap`` is a
hierarchical bootstrap that resamples seeds, then users within them (Saravanan et al.
2020), on the seed-and-user-paired differences. Both need at least ``MIN_SEEDS`` seeds
shared by the two arms; with fewer, the comparison gets no p-value (no mark on a board).
``users`` is the earlier per-user test, kept as a labelled option.

For the ``users`` unit:

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
#: what a test's sample is: training runs (seeds), seeds then users, or users
UNITS = ("seeds", "bootstrap", "users")
UNIT_LABELS = {
    "seeds": "paired t-test over training seeds (runs paired by seed, per-seed means)",
    "bootstrap": "hierarchical bootstrap over training seeds, then users (paired)",
    "users": "paired test over users of seed-averaged scores (ignores training variance)",
}
#: fewest shared seeds for a seed-level test
MIN_SEEDS = 3


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
    n_seeds: int = 0
    unit: str = "users"
    baseline: str = ""

    def significant(self, alpha: float) -> bool:
        return bool(self.p_holm <= alpha)  # False for nan (too few seeds)


def paired_test(control: np.ndarray, treatment: np.ndarray, test: str = "student",
                n_permutations: int = 10000, seed: int = 42) -> float:
    """Two-sided p-value of a paired test through ranx."""
    from ranx.statistical_tests import paired_student_t_test

    if test == "student":
        if np.allclose(control, treatment):
            return 1.0  # identical scores: scipy would return nan
        d = np.asarray(treatment, dtype=np.float64) - np.asarray(control, dtype=np.float64)
        if np.allclose(d, d[0], rtol=0.0, atol=1e-12):
            return 0.0  # the same non-zero shift for every unit: t is infinite
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


def seed_paired_test(control: Mapping[str, float], treatment: Mapping[str, float]) -> float:
    """Two-sided paired t-test over seeds: ``control``/``treatment`` map seed -> the run's
    mean metric. nan with fewer than :data:`MIN_SEEDS` shared seeds. Identical runs give
    1; a difference that is the same for every seed (zero spread) gives 0 -- which
    :func:`compare_runs` never reports: there the seed does not vary either arm's result
    (two deterministic methods, e.g. Pop and EASE^R), the seed test has nothing to
    measure, and the pair is tested over users with :func:`hierarchical_bootstrap`."""
    from scipy.stats import ttest_rel

    seeds = sorted(set(control) & set(treatment))
    if len(seeds) < MIN_SEEDS:
        return float("nan")
    c = np.array([control[s] for s in seeds], dtype=np.float64)
    t = np.array([treatment[s] for s in seeds], dtype=np.float64)
    d = t - c
    if np.allclose(d, 0.0, atol=1e-15):
        return 1.0
    if np.allclose(d, d[0], rtol=0.0, atol=1e-15):
        return 0.0
    return float(ttest_rel(t, c).pvalue)


def no_seed_spread(control: Mapping[str, float], treatment: Mapping[str, float]) -> bool:
    """Whether ≥ :data:`MIN_SEEDS` shared seeds give one and the same non-zero difference:
    neither arm's result depends on the training seed, so a test over seeds is degenerate
    (its p would be 0 whatever the size of the difference)."""
    seeds = sorted(set(control) & set(treatment))
    if len(seeds) < MIN_SEEDS:
        return False
    d = np.array([treatment[s] - control[s] for s in seeds], dtype=np.float64)
    return (not np.allclose(d, 0.0, atol=1e-15)) and bool(np.allclose(d, d[0], rtol=0.0,
                                                                      atol=1e-15))


def hierarchical_bootstrap(control: Mapping[str, Mapping[str, float]],
                           treatment: Mapping[str, Mapping[str, float]],
                           n_boot: int = 10000, seed: int = 42, chunk: int = 500) -> float:
    """Two-sided hierarchical bootstrap p-value of mean(treatment − control).

    ``control[seed][user]`` and ``treatment[seed][user]`` are per-user values of each
    training run; differences are paired by seed and user. Each replicate draws seeds
    with replacement, then users with replacement (the same users for every drawn seed),
    and averages the differences. p = 2·min(P(stat ≤ 0), P(stat ≥ 0)) with the +1
    correction, capped at 1. nan with fewer than :data:`MIN_SEEDS` shared seeds.
    """
    seeds = sorted(set(control) & set(treatment))
    if len(seeds) < MIN_SEEDS:
        return float("nan")
    users = set.intersection(*(set(control[s]) & set(treatment[s]) for s in seeds))
    users = sorted(users)
    if len(users) < 2:
        return float("nan")
    diff = np.array([[treatment[s][u] - control[s][u] for u in users] for s in seeds])
    if np.allclose(diff, 0.0, atol=1e-15):
        return 1.0
    n_s, n_u = diff.shape
    rng = np.random.default_rng(seed)
    below = above = 0
    done = 0
    while done < n_boot:
        n = min(chunk, n_boot - done)
        pick_u = rng.integers(0, n_u, size=(n, n_u))
        counts = np.zeros((n, n_u))
        np.add.at(counts, (np.arange(n)[:, None], pick_u), 1.0)
        per_seed = counts @ diff.T / n_u                       # [n, n_s]: user-resampled means
        pick_s = rng.integers(0, n_s, size=(n, n_s))
        stat = np.take_along_axis(per_seed, pick_s, axis=1).mean(axis=1)
        below += int((stat <= 0).sum())
        above += int((stat >= 0).sum())
        done += n
    p = 2 * (min(below, above) + 1) / (n_boot + 1)
    return float(min(1.0, p))


def _run_mean(per_user: Mapping[str, float]) -> float:
    return float(np.mean(list(per_user.values()))) if per_user else float("nan")


def compare_runs(per_seed: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
                 baseline_of: Mapping[str, str], metrics: Sequence[str], unit: str = "seeds",
                 test: str = "student") -> list[Comparison]:
    """Each method against its own baseline (``baseline_of[method]``; a per-group baseline
    is just a different entry), with the chosen test unit.

    ``per_seed[method][metric][seed]`` is that training run's ``{user: value}``. One Holm
    family per metric over every comparison made on that metric; a comparison without a
    p-value (too few shared seeds) stays out of the family and keeps ``p_holm`` nan.
    """
    if unit not in UNITS:
        raise BenchError(f"unknown test unit '{unit}'; choose one of {', '.join(UNITS)}.")
    out: list[Comparison] = []
    for metric in metrics:
        family: list[Comparison] = []
        for method, base in baseline_of.items():
            if method == base or base not in per_seed or method not in per_seed:
                continue
            b_runs = per_seed[base].get(metric)
            t_runs = per_seed[method].get(metric)
            if not b_runs or not t_runs:
                continue
            shared = sorted(set(b_runs) & set(t_runs))
            used = unit  # the unit this pair was tested on
            if unit == "users":
                b = seed_mean([b_runs[s] for s in b_runs])
                t = seed_mean([t_runs[s] for s in t_runs])
                users = sorted(set(b) & set(t))
                if len(users) < 2:
                    continue
                bv, tv = np.array([b[u] for u in users]), np.array([t[u] for u in users])
                p = paired_test(bv, tv, test)
                delta, n_users = float(tv.mean() - bv.mean()), len(users)
            else:
                b_mean = {s: _run_mean(b_runs[s]) for s in shared}
                t_mean = {s: _run_mean(t_runs[s]) for s in shared}
                if unit == "seeds" and no_seed_spread(b_mean, t_mean):
                    used = "bootstrap"  # no training variance: the users are the sample
                p = (seed_paired_test(b_mean, t_mean) if used == "seeds"
                     else hierarchical_bootstrap({s: b_runs[s] for s in shared},
                                                 {s: t_runs[s] for s in shared}))
                delta = (float(np.mean([t_mean[s] - b_mean[s] for s in shared]))
                         if shared else float("nan"))
                n_users = len(set.intersection(*(set(b_runs[s]) for s in shared))) if shared else 0
            family.append(Comparison(method, metric, p, delta=delta, n_users=n_users,
                                     n_seeds=len(shared), unit=used, baseline=base))
        testable = [c for c in family if not np.isnan(c.p_value)]
        for c, adj in zip(testable, holm([c.p_value for c in testable]) if testable else []):
            c.p_holm = adj
        out += family
    return out
