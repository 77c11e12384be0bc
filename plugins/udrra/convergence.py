"""When a UDRRA run stops: KL to the target reaches a threshold, or stops improving.

Why a rule of its own: the enumerable task measures the exact KL(π_θ‖π^τ) at every
evaluation, so "converged" can be decided on the quantity the losses are meant to drive
to zero. A run stops

* when the KL drops below ``threshold`` (the target is reached: nothing left to show), or
* when the KL has not improved by more than ``min_delta`` (relative to the best value
  recorded at the last improvement) for ``patience`` evaluations in a row (a plateau),

and otherwise runs to its step budget. A run that ends at the budget while its last
improvement lies in the final ``patience`` evaluations is flagged as still improving
(:func:`harness.api.still_improving`): its budget was too small to show where it ends.
Every arm of a suite gets the same budget, patience and threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from harness.api import budget_history


@dataclass
class KLConvergence:
    threshold: float
    patience: Optional[int]       # None: never stop on a plateau
    min_delta: float = 0.01
    stop_at_threshold: bool = True
    best: float = math.inf        # KL at the last improvement by more than min_delta
    best_step: int = 0            # step of that improvement
    lowest: float = math.inf      # lowest KL seen (a plateau may dip a little further)
    reached_at: Optional[int] = None
    bad: int = 0                  # evaluations since the last improvement
    reason: str = "budget"        # why the run stopped: threshold | plateau | budget
    curve: list[tuple[int, float]] = field(default_factory=list)

    def update(self, step: int, kl: float) -> bool:
        """Record the KL after ``step`` optimiser steps; True when the run should stop."""
        self.curve.append((step, kl))
        self.lowest = min(self.lowest, kl)
        if self.reached_at is None and kl < self.threshold:
            self.reached_at = step
        if kl < self.best * (1.0 - self.min_delta) or not math.isfinite(self.best):
            self.best, self.best_step, self.bad = kl, step, 0
        else:
            self.bad += 1
        if self.stop_at_threshold and self.reached_at is not None:
            self.reason = "threshold"
            return True
        if self.patience is not None and self.bad >= self.patience:
            self.reason = "plateau"
            return True
        return False

    def area(self, budget: int, every: int) -> float:
        """Mean KL over the evaluation grid 0, every, 2·every, …, budget, a stopped run's
        curve held at its last value: low for a run that gets low *and* gets there fast
        (the learning-rate selection criterion)."""
        if not self.curve:
            return math.nan
        grid = sorted(set(range(0, budget + 1, every)) | {budget})
        seen = dict(self.curve)
        out, last = [], self.curve[0][1]
        for s in grid:
            last = seen.get(s, last)
            out.append(last)
        return sum(out) / len(out)

    def history(self, budget: int, every: int, steps_run: int) -> dict[str, float]:
        """The figures every cell logs: speed, stop reason, the budget fields of the
        leaderboard's under-training flag (best/run/budget in optimiser steps)."""
        reached = self.reached_at is not None
        # best_epoch is 0-based: the evaluation after k steps follows step index k − 1
        fields = budget_history(self.best_step - 1, budget, self.patience or 1, every)
        if reached:
            fields["still_improving"] = 0.0
        return {**fields,
                "best_epoch": float(self.best_step - 1), "epochs_run": float(steps_run),
                "steps_run": float(steps_run),
                "steps_to_kl": float(self.reached_at if reached else budget + 1),
                "kl_area": self.area(budget, every), "kl_lowest": self.lowest,
                "stopped_threshold": float(self.reason == "threshold"),
                "stopped_plateau": float(self.reason == "plateau")}
