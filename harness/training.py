"""Epoch loop with validation-based early stopping, shared by every trainable method.

The best epoch's weights are restored before test scoring, so selection never sees test.
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from .api import BenchError, budget_history, optimizer_steps_counted

from .names import mlflow_name


def fit(model: torch.nn.Module, train_epoch: Callable[[int], float], dataset: Any, ctx: Any,
        epochs: int, eval_every: int = 1, patience: int = 5) -> dict[str, Any]:
    """Run ``train_epoch(epoch) -> mean loss`` up to ``epochs`` times.

    Every ``eval_every`` epochs the model is scored on validation; training stops after
    ``patience`` evaluations without improvement and the best weights are restored.
    A non-finite train loss or a run without a single optimiser step raises
    :class:`BenchError` (the cell fails with that message). Returns a small history: best epoch and value, seconds per epoch, and the budget
    (``epoch_budget``, ``patience``, ``eval_every``) with the ``still_improving`` flag
    (:func:`harness.api.still_improving`),
    so a board can tell a converged arm from one its budget cut short.
    """
    if min(epochs, eval_every, patience) < 1:
        raise BenchError(f"epochs ({epochs}), eval_every ({eval_every}) and patience "
                         f"({patience}) must each be at least 1.")
    best = BestOnValidation(patience)
    seconds = []
    valid_name = "valid_" + mlflow_name(ctx.valid_metric)
    with count_optimizer_steps() as steps:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            model.train()
            loss = float(train_epoch(epoch))
            seconds.append(time.perf_counter() - t0)
            if not math.isfinite(loss):  # a diverged model would score garbage as "finished"
                raise BenchError(f"training diverged: the train loss is {loss} at epoch "
                                 f"{epoch + 1} (is the learning rate too high?).")
            ctx.log_metrics({"train_loss": loss}, epoch)
            if (epoch + 1) % eval_every and epoch + 1 != epochs:
                continue
            model.eval()
            value = ctx.validate(model, dataset)
            ctx.report(valid_name, value, epoch)
            if best.update(value, epoch, model):
                break
    if steps[0] == 0:
        raise BenchError(f"training ran {len(seconds)} epoch(s) without one optimiser step (an "
                         "empty training split, or a batch loop that never ran?): the model "
                         "is untrained, so the cell fails instead of being recorded as finished.")
    best.restore(model)
    model.eval()
    return {"best_epoch": best.step, "best_valid": best.value,
            "epochs_run": len(seconds), "seconds_per_epoch": sum(seconds) / max(len(seconds), 1),
            **budget_history(best.step, epochs, patience, eval_every)}


class BestOnValidation:
    """Model selection on validation with patience, for any training loop: :func:`fit`
    uses it per epoch, a loop it does not drive (an RL loop per rollout batch, a trl
    callback) uses it per evaluation, so every arm of a board is stopped and restored by
    the same rule.

    :meth:`update` keeps a copy of the weights at each new best (strictly greater: the
    earliest of equal values wins) and says when ``patience`` evaluations in a row have
    not improved; :meth:`restore` puts the best weights back, so test scoring sees the
    validation-selected model, never a later, worse one."""

    def __init__(self, patience: int) -> None:
        if patience < 1:
            raise BenchError(f"patience must be at least 1, got {patience}.")
        self.patience = patience
        self.value, self.step, self.bad = -float("inf"), -1, 0
        self._state: Optional[dict] = None

    def update(self, value: float, step: int, model: torch.nn.Module) -> bool:
        """Record the evaluation at ``step``; True when training should stop."""
        if value > self.value:
            self.value, self.step, self.bad = value, step, 0
            self._state = copy.deepcopy(model.state_dict())
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best weights seen (no-op before the first evaluation)."""
        if self._state is not None:
            model.load_state_dict(self._state)


def minibatch_epoch(n: int, batch_size: int, generator: torch.Generator, opt: Any,
                    batch_loss: Callable[..., torch.Tensor],
                    columns: Sequence[torch.Tensor] = ()) -> float:
    """One pass over ``n`` training examples in mini-batches of a fresh random order
    (``generator``): ``batch_loss(indices)`` gives the batch's loss, the optimiser takes one
    step per batch. Returns the mean batch loss (the value ``fit`` logs per epoch).

    With ``columns`` (tensors of length ``n``, e.g. the users and items of the training
    pairs), each is permuted once per epoch and ``batch_loss`` receives the batch's slice
    of every column instead of the indices: the same rows in the same order, but one
    gather of ``n`` rows per epoch instead of one per column and batch (views per batch).
    """
    order = torch.randperm(n, generator=generator)
    permuted = [column[order] for column in columns]
    total, batches = 0.0, 0
    for start in range(0, n, batch_size):
        if permuted:
            loss = batch_loss(*(column[start:start + batch_size] for column in permuted))
        else:
            loss = batch_loss(order[start:start + batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        batches += 1
    return total / max(batches, 1)


def fused_adam(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam`` with torch's fused kernel when every parameter allows it
    (floating point, on CPU or CUDA), the plain for-loop implementation otherwise.

    Why: the default CPU Adam runs seven whole-tensor passes per parameter per step
    (lerp, mul, addcmul, sqrt, div, add, addcdiv); the fused kernel makes one. Same update
    rule, different float rounding (results differ from the for-loop Adam in the last
    bits, ~1e-7 relative per step). It was ~20% of a BPR-MF step on ml-100k."""
    params = [q for q in params]
    fusable = bool(params) and all(q.is_floating_point() and q.device.type in ("cpu", "cuda")
                                   for q in params)
    return torch.optim.Adam(params, lr=lr, fused=True if fusable else None)


@contextmanager
def count_optimizer_steps() -> Iterator[list[int]]:
    """Counts every ``torch.optim`` optimiser step taken inside the block, by any plugin
    or library (trl and accelerate step torch optimisers too), through torch's global
    step hook. Yields a one-element list holding the running count. Steps inside
    :func:`harness.api.optimizer_steps_not_counted` (a shared cached warm start) are not
    counted."""
    counter = [0]

    def _count(optimizer, args, kwargs) -> None:
        if optimizer_steps_counted():
            counter[0] += 1

    handle = register_optimizer_step_post_hook(_count)
    try:
        yield counter
    finally:
        handle.remove()
