"""Train a zoo backbone once per (split, backbone params, seed) and reuse it.

Every operator cell of one seed must test the *same* frozen model (a fair comparison, and
n_operators× less training). The backbone is trained through ``bench_train`` by the zoo
method that owns it, so it is bit-for-bit that method's model, then its weights are stored
through :mod:`harness.cache` under ``ctx.cache_dir/tta4sr`` (a state dict read back with
``weights_only=True`` into a freshly built encoder: no pickled objects). The key covers
everything that changes the trained weights.
"""
from __future__ import annotations

import hashlib
import json
import inspect
import time
from pathlib import Path
from typing import Any, Optional

import torch

from harness.api import count_optimizer_steps, get_or_build
from .params import BACKBONES


def cache_key(backbone: str, backbone_params: dict, dataset: Any, ctx: Any) -> str:
    plugin = ""
    if ctx.registry is not None:
        spec = ctx.registry.catalogue.methods.get(backbone)
        plugin = f"{ctx.registry.plugin_version('method', backbone)}:{getattr(spec, 'version', '')}"
    payload = {"backbone": backbone, "params": backbone_params, "split_id": dataset.split_id,
               "task": dataset.task, "dataset": dataset.name, "seed": ctx.seed,
               "valid_metric": ctx.valid_metric, "plugin": plugin,
               "torch": torch.__version__, "device": str(ctx.device)}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_or_train(backbone: str, backbone_params: dict, dataset: Any, ctx: Any,
                  seed: Optional[int] = None) -> tuple[torch.nn.Module, dict, bool]:
    """(frozen eval-mode backbone, its training history, whether it came from the cache).

    ``seed`` trains the backbone with another seed than the cell's (the cell's seed then
    only drives the augmentation draws)."""
    if seed is not None and seed != ctx.seed:
        ctx = ctx.child(seed=seed)
    encoder_cls = BACKBONES[backbone][1]

    def build(folder: Path) -> tuple[torch.nn.Module, dict]:
        t0 = time.perf_counter()
        with count_optimizer_steps() as steps:
            trained = ctx.train(backbone, backbone_params, dataset)
        model = trained.model
        if type(model) is not encoder_cls:
            raise TypeError(f"backbone '{backbone}' came back as {type(model).__name__}, "
                            f"expected {encoder_cls.__name__}")
        history = dict(trained.history)
        history["backbone_train_seconds"] = time.perf_counter() - t0
        # every cell on this backbone reports the steps it took, trained here or loaded
        history["optimizer_steps"] = float(steps[0])
        torch.save(model.state_dict(), folder / "weights.pt")
        (folder / "history.json").write_text(json.dumps(
            {k: v for k, v in history.items() if isinstance(v, (int, float, str))}))
        return model, history

    def load(folder: Path) -> tuple[torch.nn.Module, dict]:
        # weights only (tensors): a planted file fails to load instead of running code
        state = torch.load(folder / "weights.pt", map_location=ctx.device, weights_only=True)
        model = _rebuild(encoder_cls, backbone_params, dataset).to(ctx.device)
        model.load_state_dict(state, strict=True)
        return model, json.loads((folder / "history.json").read_text())

    inputs = {"backbone": backbone, "key": cache_key(backbone, backbone_params, dataset, ctx)}
    (model, history), _, cached = get_or_build(ctx.cache_dir, "tta4sr", inputs, build,
                                                     load, key=f"{backbone}-{inputs['key']}")
    for name in ("embed", "encode", "item_weights", "score_sequences"):
        if not callable(getattr(model, name, None)):
            raise TypeError(f"backbone '{backbone}' ({type(model).__name__}) has no '{name}': "
                            "TTA needs a harness.blocks.sequence.SequenceEncoder")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, history, cached


def _rebuild(encoder_cls: type, backbone_params: dict, dataset: Any) -> torch.nn.Module:
    """An untrained encoder of the cached backbone's shape: the zoo builds it from the
    params of the same names (``SASRec(n_items, dim, max_len, ...)``)."""
    names = inspect.signature(encoder_cls).parameters
    return encoder_cls(dataset.n_items, **{k: v for k, v in backbone_params.items() if k in names})
