"""The per-cell context handed to every stage hook."""
from __future__ import annotations

import dataclasses
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .api import BenchError, ScoreResult, TrainResult


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Context:
    """What a plugin may use while running one cell.

    ``report`` is how training tells the harness about per-epoch values: they are logged
    to MLflow, and the tuner may register a callback there to prune a trial.
    """

    registry: Any
    seed: int
    metrics: list[str]
    valid_metric: str
    device: torch.device = field(default_factory=default_device)
    workdir: Path = Path(".bench_cache/cells")
    cache_dir: Path = Path(".bench_cache")
    cell: Any = None
    eval_chunk_size: int = 1024
    log_metrics: Callable[[dict[str, float], Optional[int]], None] = lambda m, step=None: None
    on_report: list[Callable[[str, float, int], None]] = field(default_factory=list)

    @property
    def hook(self):
        return self.registry.pm.hook

    _rngs: dict = field(default_factory=dict, repr=False)

    def rng(self, stream: str) -> torch.Generator:
        """A persistent torch RNG for one named stream (e.g. "sampler.uniform"),
        derived from the cell's seed, so adding a stream never shifts another's draws."""
        if stream not in self._rngs:
            self._rngs[stream] = torch.Generator().manual_seed(
                (self.seed * 1_000_003 + zlib.crc32(stream.encode())) % (2**63))
        return self._rngs[stream]

    def child(self, seed: Optional[int] = None, quiet: bool = False) -> "Context":
        """A context for a sub-run inside this cell (a backbone, a teacher, a pretrainer).

        ``seed``: the sub-run behaves as if its cell had that seed: fresh RNG streams
        derived from it, and the global torch/NumPy/``random`` generators re-seeded as the
        runner does at a cell's start, so a model trained here is bit-for-bit the one a
        cell with that seed would train. Without ``seed`` the streams are fresh copies
        from the cell's own seed (the parent's draws are not shifted) and the global
        generators are left alone. ``quiet``: per-epoch values are not logged and not
        reported to the tuner (the sub-run's curves are not the cell's).
        """
        changes: dict[str, Any] = {"_rngs": {}}
        if seed is not None:
            changes["seed"] = int(seed)
            seed_everything(int(seed))
        if quiet:
            changes["log_metrics"] = lambda m, step=None: None
            changes["on_report"] = []
        return dataclasses.replace(self, **changes)

    # -- stage helpers a plugin calls ------------------------------------------------------
    def train(self, method: str, params: dict, dataset: Any) -> TrainResult:
        """Ask the plugins to train ``method`` (what the runner does for a cell; how a
        method trains another plugin's model as its backbone). Always a TrainResult."""
        out = self.hook.bench_train(method=method, params=dict(params), dataset=dataset, ctx=self)
        if out is None:
            raise BenchError(f"no plugin trained method '{method}'.")
        return TrainResult.of(out)

    def load_dataset(self, name: str, params: Optional[dict] = None) -> Any:
        """Ask the plugins for dataset ``name``: what the runner does for a suite's dataset
        entry, and how a loader delegates to another plugin's loader (e.g. a filtered
        variant of ``ml-100k``)."""
        out = self.hook.bench_load_dataset(name=name, params=dict(params or {}), ctx=self)
        if out is None:
            known = ", ".join(sorted(self.registry.catalogue.datasets))
            raise BenchError(f"no plugin loaded dataset '{name}' (known: {known}).")
        return out

    def sample_negatives(self, sampler: str, params: dict, users: torch.Tensor,
                         pos_items: torch.Tensor, model: Any, dataset: Any) -> torch.Tensor:
        out = self.hook.bench_sample_negatives(sampler=sampler, params=params, users=users,
                                               pos_items=pos_items, model=model,
                                               dataset=dataset, ctx=self)
        if out is None:
            known = ", ".join(sorted(self.registry.catalogue.samplers))
            raise KeyError(f"no plugin provides negative sampler '{sampler}' (known: {known}).")
        return out

    def score(self, model: Any, dataset: Any, part: str, metrics: list[str]) -> ScoreResult:
        result = self.hook.bench_score(model=model, dataset=dataset, part=part,
                                       metrics=metrics, ctx=self)
        if result is None:
            raise RuntimeError(f"no plugin can score a '{dataset.task}' model of type "
                               f"{type(model).__name__}.")
        return result

    def validate(self, model: Any, dataset: Any) -> float:
        """The suite's validation metric on the validation split (never test)."""
        return self.score(model, dataset, "valid", [self.valid_metric]).metrics[self.valid_metric]

    def report(self, name: str, value: float, step: int) -> None:
        self.log_metrics({name: value}, step)
        for callback in self.on_report:
            callback(name, value, step)
