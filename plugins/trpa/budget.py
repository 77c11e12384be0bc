"""Update budget of the online methods: rollout batches counted, not assumed.

Every online arm (TRPA, trl GRPO, trl Online DPO) takes ``updates_per_batch`` optimiser
steps per rollout batch (μ). The optimiser steps are counted by the runner through torch's
global step hook (``optimizer_steps``); the rollout batches are counted here, as the calls
to the policy's ``generate`` made during training (validation generates too and is not
counted). Both land in the cell's metrics, so a board and a test can check the ratio on
what really ran instead of trusting the configuration.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class RolloutCounter:
    """Counts calls to ``model.generate`` made outside :meth:`paused` blocks.

    trl's trainers and TRPA's loop all sample through ``model.generate`` once per rollout
    batch (one call for the whole group), so this is the number of rollout batches."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.count = 0
        self._paused = 0

    def _generate(self, *args, **kwargs):
        if not self._paused:
            self.count += 1
        return type(self.model).generate(self.model, *args, **kwargs)

    def __enter__(self) -> "RolloutCounter":
        self.model.generate = self._generate  # instance attribute shadows the class method
        self.model._rollout_counter = self
        return self

    def __exit__(self, *exc) -> None:
        del self.model.generate
        del self.model._rollout_counter

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1


@contextmanager
def not_a_rollout(model: Any) -> Iterator[None]:
    """Generation inside this block (validation) is not counted as a rollout batch."""
    counter = getattr(model, "_rollout_counter", None)
    if counter is None:
        yield
        return
    with counter.paused():
        yield
