"""Choosing an operator's setting on validation, inside the cell.

The paper tunes σ (and TNoise's ranges) per dataset; a fixed default would test the
operator at a setting nobody would deploy. A ``grid`` is searched here rather than with
``bench tune`` because every candidate shares the cell's frozen backbone: each one costs a
TTA pass over the validation users, not a training run, and each training seed chooses on
its own backbone, so the choice varies with the seed as the test does. Test is never
scored before the choice is made.
"""
from __future__ import annotations

import time
from typing import Any

from harness.api import mlflow_name

from .params import TTAParams
from .wrapper import TTAModel


def select_on_validation(backbone: Any, params: TTAParams, dataset: Any, ctx: Any
                         ) -> tuple[TTAParams, dict[str, float]]:
    """(the candidate with the best validation ``ctx.valid_metric``, the first on ties;
    figures to log: the choice as ``selected_*``, its validation value, the grid size and
    seconds). Each candidate's validation value is logged as a step of
    ``grid_valid_<metric>``, in grid order."""
    candidates = params.candidates()
    if len(candidates) == 1 and not params.grid:
        return params, {}
    name = "grid_valid_" + mlflow_name(ctx.valid_metric)
    t0 = time.perf_counter()
    best, best_value = candidates[0], -float("inf")
    for step, candidate in enumerate(candidates):
        value = float(ctx.validate(TTAModel(backbone, candidate, ctx.seed), dataset))
        ctx.log_metrics({name: value}, step)
        if value > best_value:
            best, best_value = candidate, value
    return best, {**best.selected(list(params.grid)), "grid_candidates": float(len(candidates)),
                  "grid_best_valid": best_value,
                  "grid_seconds": time.perf_counter() - t0}
