"""Epoch loop with validation-based early stopping, shared by every trainable method.

The best epoch's weights are restored before test scoring, so selection never sees test.
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from .api import budget_history

from .names import mlflow_name


def fit(model: torch.nn.Module, train_epoch: Callable[[int], float], dataset: Any, ctx: Any,
        epochs: int, eval_every: int = 1, patience: int = 5) -> dict[str, Any]:
    """Run ``train_epoch(epoch) -> mean loss`` up to ``epochs`` times.

    Every ``eval_every`` epochs the model is scored on validation; training stops after
    ``patience`` evaluations without improvement and the best weights are restored.
    Returns a small history: best epoch and value, seconds per epoch, and the budget
    (``epoch_budget``, ``patience``, ``eval_every``) with the ``still_improving`` flag
    (:func:`harness.api.still_improving`),
    so a board can tell a converged arm from one its budget cut short.
    """
    best_value, best_epoch, best_state, bad = -float("inf"), -1, None, 0
    seconds = []
    valid_name = "valid_" + mlflow_name(ctx.valid_metric)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        loss = train_epoch(epoch)
        seconds.append(time.perf_counter() - t0)
        ctx.log_metrics({"train_loss": float(loss)}, epoch)
        if (epoch + 1) % eval_every and epoch + 1 != epochs:
            continue
        model.eval()
        value = ctx.validate(model, dataset)
        ctx.report(valid_name, value, epoch)
        if value > best_value:
            best_value, best_epoch, bad = value, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"best_epoch": best_epoch, "best_valid": best_value,
            "epochs_run": len(seconds), "seconds_per_epoch": sum(seconds) / max(len(seconds), 1),
            **budget_history(best_epoch, epochs, patience, eval_every)}



def minibatch_epoch(n: int, batch_size: int, generator: torch.Generator, opt: Any,
                    batch_loss: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """One pass over ``n`` training examples in mini-batches of a fresh random order
    (``generator``): ``batch_loss(indices)`` gives the batch's loss, the optimiser takes one
    step per batch. Returns the mean batch loss (the value ``fit`` logs per epoch)."""
    order = torch.randperm(n, generator=generator)
    total, batches = 0.0, 0
    for start in range(0, n, batch_size):
        loss = batch_loss(order[start:start + batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        batches += 1
    return total / max(batches, 1)

@contextmanager
def count_optimizer_steps() -> Iterator[list[int]]:
    """Counts every ``torch.optim`` optimiser step taken inside the block, by any plugin
    or library (trl and accelerate step torch optimisers too), through torch's global
    step hook. Yields a one-element list holding the running count."""
    counter = [0]

    def _count(optimizer, args, kwargs) -> None:
        counter[0] += 1

    handle = register_optimizer_step_post_hook(_count)
    try:
        yield counter
    finally:
        handle.remove()
