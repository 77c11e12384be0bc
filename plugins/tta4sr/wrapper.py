"""The generic TTA wrapper: a frozen backbone, a registered augmentation operator, and mean
aggregation of the per-view scores.

Nothing here trains or changes the backbone: it stays in eval mode (dropout off) and
every pass runs under ``torch.no_grad``. Operators are looked up by name in the
catalogue (``bench_register_augmenters``), so a third-party operator plugs in the same way.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Optional

import numpy as np
import torch

from harness.blocks.sequence import chronological_sequences, history_tokens

from .operators import SequenceBatch, View
from .params import TTAParams


class TTAModel:
    """What ``bench_train`` returns for ``tta4sr``: scored by this plugin's ``bench_score``
    (it needs the split part to rebuild full histories, which ``score(users)`` lacks)."""

    def __init__(self, backbone: torch.nn.Module, params: TTAParams, seed: int) -> None:
        self.backbone = backbone.eval()
        self.params = params
        self.seed = params.tta_seed if params.tta_seed is not None else seed
        self.history: dict[str, float] = {}

    @property
    def max_len(self) -> int:
        return self.backbone.max_len


def view_scores(model: torch.nn.Module, views: list[View]) -> tuple[list[torch.Tensor], int]:
    """Scores ``[B, n_items]`` of each view, and how many encoder passes they took
    (views with the same ``tokens`` object and no ``inputs`` share one pass)."""
    weights = model.item_weights()
    hidden_of: dict[int, torch.Tensor] = {}
    out, passes = [], 0
    for v in views:
        if v.inputs is None and id(v.tokens) in hidden_of:
            h = hidden_of[id(v.tokens)]
        else:
            h = model.last_hidden(v.tokens, v.inputs)
            passes += 1
            if v.inputs is None:
                hidden_of[id(v.tokens)] = h
        if v.output_noise is not None:
            h = h + v.output_noise
        out.append(h @ weights.T)
    return out, passes


def aggregate(scores: list[torch.Tensor], original: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Plain arithmetic mean of raw scores (TTA4SR ``test_aug``), the original optional."""
    parts = list(scores) + ([original] if original is not None else [])
    if not parts:
        raise ValueError("nothing to aggregate: no augmented view and no original scores")
    return torch.stack(parts).mean(dim=0)


class PartScorer:
    """``score(users)`` over one split part for :func:`harness.scoring.score_ranking`,
    with the wall time of the plain pass and of the TTA pass kept apart."""

    def __init__(self, tta: TTAModel, dataset: Any, part: str, ctx: Any) -> None:
        if part not in ("valid", "test"):
            raise ValueError(f"TTA scores 'valid' or 'test', not '{part}'")
        parts = ("train",) if part == "valid" else ("train", "valid")
        self.tta, self.dataset, self.part, self.ctx = tta, dataset, part, ctx
        # full histories (tokens), augmented first and truncated after, as the official code
        self.sequences = [np.asarray(s, dtype=np.int64) + 1
                          for s in chronological_sequences(dataset, parts)]
        self.tokens = history_tokens(dataset, part, tta.max_len)
        self.timing: dict[str, float] = defaultdict(float)

    def augment(self, users: np.ndarray) -> list[View]:
        p = self.tta.params
        if p.operator == "none":
            return []
        model = self.tta.backbone
        batch = SequenceBatch(users=users, sequences=[self.sequences[u] for u in users],
                              tokens=self.tokens[torch.as_tensor(users)].to(_device(model)),
                              max_len=model.max_len, mask_token=model.mask_token, part=self.part,
                              seed=self.tta.seed, dataset=self.dataset)
        spec = self.ctx.registry.catalogue.augmenter(p.operator)
        views = spec.apply(batch=batch, params=p.operator_params(), model=model, ctx=self.ctx)
        for v in views:
            if tuple(v.tokens.shape) != (len(users), model.max_len):
                raise RuntimeError(f"operator '{p.operator}' returned a view shaped "
                                   f"{tuple(v.tokens.shape)}, expected {(len(users), model.max_len)}")
        return views

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Mean scores over the views; the plain and TTA passes are each timed
        ``timing_repeats`` times and the fastest kept (the machine is shared: the minimum
        is the least contended estimate of the same work)."""
        model, p = self.tta.backbone, self.tta.params
        u = users.cpu().numpy()
        tokens = self.tokens[users.cpu()].to(_device(model))
        plain_s, tta_s = float("inf"), float("inf")
        with torch.no_grad():
            for _ in range(p.timing_repeats):
                t0 = time.perf_counter()
                original = model.score_sequences(tokens)
                t1 = time.perf_counter()
                if p.operator == "none":
                    out, passes = original, 1
                    t2 = t1 + (t1 - t0)   # the TTA result *is* the plain pass
                else:
                    scores, passes = view_scores(model, self.augment(u))
                    out = aggregate(scores, original if p.include_original else None)
                    passes += int(p.include_original)
                    t2 = time.perf_counter()
                plain_s, tta_s = min(plain_s, t1 - t0), min(tta_s, t2 - t1)
        self.timing["notta_seconds"] += plain_s
        self.timing["tta_seconds"] += tta_s
        self.timing["tta_encoder_passes"] += passes * len(u)
        self.timing["tta_users"] += len(u)
        return out


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def length_buckets(lengths: np.ndarray, per_user: dict[str, dict[str, float]], users: np.ndarray,
                   edges: tuple[int, ...] = (50, 150)) -> dict[str, float]:
    """Mean per-user metric by history length (≤50, 51–150, >150 by default): the
    extended abstract warns TTA may hurt long sequences, and ML-100k's are long."""
    names = [f"le{edges[0]}"] + [f"le{b}" for b in edges[1:]] + [f"gt{edges[-1]}"]
    bucket = np.searchsorted(np.asarray(edges), lengths[users], side="left")
    out: dict[str, float] = {}
    for b, name in enumerate(names):
        rows = users[bucket == b]
        out[f"bucket_{name}_users"] = float(len(rows))
        for metric, values in per_user.items():
            key = metric.replace("@", "")
            vals = [values[str(r)] for r in rows if str(r) in values]
            if vals:
                out[f"bucket_{name}_{key}"] = float(np.mean(vals))
    return out
