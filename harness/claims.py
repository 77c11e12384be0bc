"""A paper's claims as data: a suite declares them, the leaderboard states their verdicts.

A claim says that one arm beats another on a metric ("LSGRec ≥ LightGCN(pos-only) on
NDCG@20"). Its verdict is computed from the finished runs, never written by hand:

* **not testable here** when either arm has fewer than :data:`~harness.significance.MIN_SEEDS`
  training runs, or any of its runs was still improving when its epoch budget ran out (a
  comparison against an under-trained arm says nothing about the method);
* **holds** when the Holm-adjusted p-value of the seed-level test is at most ``alpha`` and
  the difference has the claimed sign;
* **does not hold** otherwise, saying whether the difference was reversed or not
  significant.

All claims of a suite form one Holm family, tested over training runs (seeds paired).

A claim may instead name a ``threshold`` (and no ``than``): "this arm gets the metric
below (``direction: lower``) or above the threshold", e.g. "DPO converges to the target:
KL < 0.05". It **holds** when every training run of the arm (at least ``MIN_SEEDS``, none
still improving) is on the claimed side, and **does not hold** otherwise, saying how many
runs were; it is a count over runs, not a test, so it is outside the Holm family.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .significance import MIN_SEEDS, compare_runs, holm

HOLDS, DOES_NOT_HOLD, NOT_TESTABLE = "holds", "does not hold", "not testable here"


class Claim(BaseModel):
    """``method`` beats ``than`` on ``metric`` (``direction: higher`` means a larger value
    is the claimed win; ``lower`` for error-like metrics)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="the claim as the paper states it")
    method: str
    than: Optional[str] = None
    metric: str
    direction: Literal["higher", "lower"] = "higher"
    dataset: Optional[str] = None  # default: every dataset of the board
    #: instead of ``than``: the claimed bound on the arm's own metric, in every run
    threshold: Optional[float] = None

    @model_validator(mode="after")
    def _one_reference(self) -> "Claim":
        if (self.than is None) == (self.threshold is None):
            raise ValueError("a claim compares with exactly one of `than` (another arm) or "
                             "`threshold` (a bound every run must meet)")
        return self

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.method,) if self.than is None else (self.method, self.than)


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    reason: str
    delta: float = float("nan")
    p_holm: float = float("nan")
    n_seeds: int = 0

    def body(self) -> str:
        """The claim and its numbers, as plain text (renderers escape it)."""
        c = self.claim
        if c.threshold is not None:
            return f"{c.text} ({c.method}; {self.reason})"
        numbers = (f"Δ{c.metric} = {self.delta:+.4f} over {self.n_seeds} seeds, Holm p = "
                   f"{self.p_holm:.3g}" if not math.isnan(self.delta) else "")
        tail = "; ".join(x for x in (numbers, self.reason) if x)
        return f"{c.text} ({c.method} vs {c.than}; {tail})"

    def line(self) -> str:
        return f"{self.verdict}: {self.body()}"


def judge(claims: Sequence[Claim],
          per_seed: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
          still_improving: Mapping[str, int], alpha: float = 0.05) -> list[Verdict]:
    """Verdicts for one board.

    ``per_seed[method][metric][seed]`` holds each training run's per-user values;
    ``still_improving[method]`` counts that arm's runs flagged as under-trained.
    """
    verdicts: list[Verdict] = []
    tested: list[tuple[int, float]] = []  # (index into verdicts, raw p)
    for claim in claims:
        missing = [m for m in claim.arms if claim.metric not in per_seed.get(m, {})]
        if missing:
            verdicts.append(Verdict(claim, NOT_TESTABLE, f"no finished runs of {', '.join(missing)} "
                                    f"with {claim.metric}"))
            continue
        flagged = [m for m in claim.arms if still_improving.get(m, 0)]
        if claim.threshold is not None:
            verdicts.append(judge_threshold(claim, per_seed[claim.method][claim.metric], flagged))
            continue
        [cmp] = compare_runs({m: {claim.metric: per_seed[m][claim.metric]}
                              for m in (claim.method, claim.than)},
                             {claim.method: claim.than}, [claim.metric], unit="seeds")
        v = Verdict(claim, "", "", delta=cmp.delta, n_seeds=cmp.n_seeds)
        if flagged:
            v.verdict = NOT_TESTABLE
            v.reason = (f"{' and '.join(flagged)} still improving at the end of its epoch budget "
                        "(under-trained)")
        elif cmp.n_seeds < MIN_SEEDS or math.isnan(cmp.p_value):
            v.verdict = NOT_TESTABLE
            v.reason = f"{cmp.n_seeds} shared seeds; a test over training runs needs {MIN_SEEDS}"
        else:
            tested.append((len(verdicts), cmp.p_value))  # judged after Holm, below
        verdicts.append(v)
    adjusted = holm([p for _, p in tested]) if tested else []
    for (i, _), p_adj in zip(tested, adjusted):
        v = verdicts[i]
        v.p_holm = p_adj
        sign = 1.0 if v.claim.direction == "higher" else -1.0
        better = sign * v.delta > 0
        if p_adj <= alpha and better:
            v.verdict, v.reason = HOLDS, ""
        elif p_adj <= alpha:
            v.verdict, v.reason = DOES_NOT_HOLD, "significantly reversed"
        else:
            v.verdict = DOES_NOT_HOLD
            v.reason = f"difference not significant at α = {alpha}"
    return verdicts


def judge_threshold(claim: Claim, runs: Mapping[str, Mapping[str, float]],
                    flagged: Sequence[str]) -> Verdict:
    """A bound claim: every run's value (the mean over its units) on the claimed side."""
    values = [sum(units.values()) / len(units) for units in runs.values() if units]
    n, bound = len(values), float(claim.threshold)
    lower = claim.direction == "lower"
    met = sum((v < bound) if lower else (v > bound) for v in values)
    mean = sum(values) / n if n else math.nan
    worst = (max(values) if lower else min(values)) if n else math.nan
    side = "<" if lower else ">"
    numbers = (f"{claim.metric} {side} {bound:g} in {met}/{n} runs; mean {mean:.4g}, "
               f"{'max' if lower else 'min'} {worst:.4g}")
    v = Verdict(claim, "", numbers, delta=mean, n_seeds=n)
    if flagged:
        v.verdict = NOT_TESTABLE
        v.reason = f"{numbers}; still improving at the end of its budget (under-trained)"
    elif n < MIN_SEEDS:
        v.verdict = NOT_TESTABLE
        v.reason = f"{numbers}; {n} runs, a claim over training runs needs {MIN_SEEDS}"
    else:
        v.verdict = HOLDS if met == n else DOES_NOT_HOLD
    return v
