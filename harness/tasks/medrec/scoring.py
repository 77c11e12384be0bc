"""Turn a model's drug probabilities on one split part into a :class:`ScoreResult`:
means for ALL and each slice, per-sample values (keyed by sample id) for paired tests."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...api import ScoreResult
from .metrics import medrec_metrics


def labels_matrix(samples: Sequence[dict], drugs: Sequence[str]) -> np.ndarray:
    drug_id = {d: j for j, d in enumerate(drugs)}
    y = np.zeros((len(samples), len(drugs)), dtype=bool)
    for i, s in enumerate(samples):
        y[i, [drug_id[d] for d in s["drugs"] if d in drug_id]] = True
    return y


def score_probabilities(scores: np.ndarray, data: Any, part: str, want: Sequence[str]
                        ) -> ScoreResult:
    info = data.extra["medrec"]
    samples = data.part(part)
    y = labels_matrix(samples, info.drugs)
    slices = info.slices.get(part, {})
    means, per = medrec_metrics(y, scores, info.tau, info.ddi, slices, want, info.secondary_tau)
    ids = [s["sample_id"] for s in samples]
    per_user: dict[str, dict[str, float]] = {}
    for name, values in per.items():
        base, _, sl = name.rpartition("_")
        if sl in slices and base:
            keys = [ids[i] for i in slices[sl]]
        else:
            keys = ids
        per_user[name] = {k: float(v) for k, v in zip(keys, values)}
    return ScoreResult(metrics=means, per_user=per_user)
