"""Train a zoo backbone once per (split, backbone params, seed) and reuse it.

Every operator cell of one seed must test the *same* frozen model (a fair comparison, and
n_operators× less training). The backbone is trained through ``bench_train`` by the zoo
method that owns it, so it is bit-for-bit that method's model, then pickled under
``ctx.cache_dir/tta4sr``. The key covers everything that changes the trained weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import torch

from harness.context import seed_everything


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
        seed_everything(seed)
        ctx = replace(ctx, seed=seed, _rngs={})
    path = Path(ctx.cache_dir) / "tta4sr" / f"{backbone}-{cache_key(backbone, backbone_params, dataset, ctx)}.pt"
    if path.exists():
        # our own cache file (a pickled zoo encoder), written below
        stored = torch.load(path, map_location=ctx.device, weights_only=False)
        model, history = stored["model"], stored["history"]
        cached = True
    else:
        t0 = time.perf_counter()
        model = ctx.hook.bench_train(method=backbone, params=dict(backbone_params),
                                     dataset=dataset, ctx=ctx)
        if model is None:
            raise RuntimeError(f"no plugin trained the backbone '{backbone}'")
        history = dict(getattr(model, "history", None) or {})
        history["backbone_train_seconds"] = time.perf_counter() - t0
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")   # atomic: parallel runs share the cache
        torch.save({"model": model, "history": history}, tmp)
        os.replace(tmp, path)
        cached = False
    for name in ("embed", "encode", "item_weights", "score_sequences"):
        if not callable(getattr(model, name, None)):
            raise TypeError(f"backbone '{backbone}' ({type(model).__name__}) has no '{name}': "
                            "TTA needs a harness.blocks.sequence.SequenceEncoder")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, history, cached
