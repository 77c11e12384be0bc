"""The plugin API of bench: every hook a plugin may implement, and when it is called.

Hooks are called with keyword arguments only, so an implementation may accept any
subset of a spec's arguments (pluggy's opt-in arguments) and specs can grow without
breaking plugins. Stage hooks are ``firstresult``: the plugin that owns the named
method/dataset/sampler answers, the others return ``None``. Registration hooks are 1:N:
every plugin adds to the catalogue (``bench ls``, ``bench describe``, ``bench validate``).

What ``bench run`` does, in order:

1. registration, once per process: ``bench_register_methods``, ``_datasets``,
   ``_samplers``, ``_metrics``, ``_splits``, ``_augmenters`` build the catalogue; the
   suite is validated against it.
2. per dataset entry, once: ``bench_load_dataset`` (raw :class:`harness.api.Interactions`
   or a generated :class:`harness.api.TaskData`), then the harness preprocesses and
   splits with the registered split named by ``split.strategy`` (cached by split id).
3. per cell (method x dataset x seed), unless already finished:
   ``bench_on_cell_start`` -> ``bench_train`` -> ``bench_score`` on test ->
   ``bench_on_cell_end`` (also when training, scoring or the dataset failed).

Called by methods, not by the runner, through the cell's context:
``bench_sample_negatives`` (``ctx.sample_negatives``), ``bench_score`` on validation
(``ctx.validate`` / ``ctx.score``), ``bench_load_dataset`` (``ctx.load_dataset``, so a
loader can delegate). Augmentation operators are registered specs with an ``apply``
function a method looks up (``ctx.registry.catalogue.augmenters``); alignment is a
method's own code inside ``bench_train`` (see ``plugins/trpa``), not a hook.
"""
from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration (1:N) ----------------------------------------------------------------

@hookspec
def bench_register_datasets() -> list[Any]:
    """Return :class:`harness.api.DatasetSpec` objects this plugin can load."""


@hookspec
def bench_register_methods() -> list[Any]:
    """Return :class:`harness.api.MethodSpec` objects this plugin can train."""


@hookspec
def bench_register_samplers() -> list[Any]:
    """Return :class:`harness.api.SamplerSpec` objects (training negative samplers)."""


@hookspec
def bench_register_metrics() -> list[Any]:
    """Return :class:`harness.api.MetricSpec` objects (names usable in a suite's ``metrics``)."""


@hookspec
def bench_register_splits() -> list[Any]:
    """Return :class:`harness.api.SplitSpec` objects (a suite's ``split: {strategy: NAME}``)."""


@hookspec
def bench_register_augmenters() -> list[Any]:
    """Return :class:`harness.api.AugmenterSpec` objects: test-time augmentation operators
    that methods such as ``tta4sr`` look up by name."""


# --- stages (firstresult: the owner answers, everyone else returns None) ------------------

@hookspec(firstresult=True)
def bench_load_dataset(name: str, params: dict, ctx: Any) -> Any:
    """Load dataset ``name`` as :class:`harness.api.Interactions` (or a generated task
    as :class:`harness.api.TaskData`).

    Return ``None`` if ``name`` is not yours. The harness applies preprocessing and the
    suite's split protocol afterwards, so that every method sees the same frozen split.
    ``ctx`` is a context seeded by the split's seed (loading is shared by the cells of a
    dataset); ``ctx.load_dataset(other, params)`` delegates to another plugin's loader.
    """


@hookspec(firstresult=True)
def bench_train(method: str, params: dict, dataset: Any, ctx: Any) -> Any:
    """Fit method ``method`` on ``dataset`` (a :class:`harness.data.Dataset`).

    Return :class:`harness.api.TrainResult` ``(model, history)`` (for ranking tasks the
    model has ``score(users: LongTensor) -> FloatTensor[len(users), n_items]``), or
    ``None`` if the method is not yours. A bare model is accepted too (its ``history``
    attribute, if any, is read). Select epochs on validation only (``ctx.validate``).
    """


@hookspec(firstresult=True)
def bench_sample_negatives(sampler: str, params: dict, users: Any, pos_items: Any,
                           model: Any, dataset: Any, ctx: Any) -> Any:
    """Draw training negatives for (user, positive) pairs with sampler ``sampler``.

    ``users``/``pos_items`` are LongTensors of equal length. Return a LongTensor of
    item ids shaped ``[len(users)]`` or ``[len(users), n]`` that never contains a
    training positive of the user, or ``None`` if the sampler is not yours.
    """


@hookspec(firstresult=True)
def bench_score(model: Any, dataset: Any, part: str, metrics: list, ctx: Any) -> Any:
    """Score ``model`` on split ``part`` (``"valid"`` or ``"test"``).

    Return a :class:`harness.api.ScoreResult`, or ``None`` to let a later plugin (the
    harness's full-ranking scorer runs last) handle the model's task.
    """


# --- observers ---------------------------------------------------------------------------

@hookspec
def bench_on_cell_start(cell: Any, ctx: Any) -> None:
    """Called before a cell runs."""


@hookspec
def bench_on_cell_end(cell: Any, ctx: Any, result: Any) -> None:
    """Called after every cell that ran, finished or failed (``result.status``,
    ``result.error``); also when its dataset failed to load. Not called for cells skipped
    as already finished. An observer's exception is recorded on the cell's run and does
    not change the cell's status."""
