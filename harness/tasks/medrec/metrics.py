"""Medication-recommendation metrics (spec §2.2), per sample, averaged over samples
(PyHealth's averaging; GAMENet/SafeDrug's originals average per patient first).

With Y the true drug set and Ŷ = {j : ŷ_j ≥ τ}:

* Jaccard = |Y∩Ŷ| / |Y∪Ŷ|;
* F1 = 2PR/(P+R), P = |Y∩Ŷ|/|Ŷ|, R = |Y∩Ŷ|/|Y|, 0 where undefined;
* PRAUC = average precision of the score ranking over all drugs (sklearn's
  ``average_precision_score`` per sample, i.e. ``average="samples"``);
* avg #Med = mean |Ŷ|;
* DDI rate = Σ_samples #{unordered pairs in Ŷ with A[i,j]=1} / Σ_samples #{pairs in Ŷ}:
  pooled (micro), not a per-sample mean, so it has no per-sample values.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

SET_METRICS = ("jaccard", "f1", "avg_med")


def set_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample Jaccard, F1 and |Ŷ| from 0/1 matrices [n, n_drugs]."""
    y_true, y_pred = y_true.astype(bool), y_pred.astype(bool)
    inter = (y_true & y_pred).sum(1).astype(np.float64)
    union = (y_true | y_pred).sum(1).astype(np.float64)
    n_pred = y_pred.sum(1).astype(np.float64)
    n_true = y_true.sum(1).astype(np.float64)
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    prec = np.divide(inter, n_pred, out=np.zeros_like(inter), where=n_pred > 0)
    rec = np.divide(inter, n_true, out=np.zeros_like(inter), where=n_true > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(inter), where=(prec + rec) > 0)
    return {"jaccard": jac, "f1": f1, "avg_med": n_pred}


def prauc(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-sample average precision (sklearn); samples without a true drug get 0."""
    from sklearn.metrics import average_precision_score

    out = np.zeros(len(y_true))
    for i in range(len(y_true)):
        if y_true[i].any():
            out[i] = average_precision_score(y_true[i], scores[i])
    return out


def ddi_rate(y_pred: np.ndarray, ddi: Optional[np.ndarray]) -> float:
    """Pooled share of predicted drug pairs that interact (0 without predicted pairs or
    without a DDI graph)."""
    if ddi is None:
        return 0.0
    y = y_pred.astype(np.float64)
    a = np.asarray(ddi) > 0
    a = (a | a.T).astype(np.float64)  # symmetric adjacency
    np.fill_diagonal(a, 0.0)
    bad = np.einsum("ni,ij,nj->", y, a, y) / 2  # each unordered pair once
    n = y.sum(1)
    pairs = float((n * (n - 1) / 2).sum())
    return float(bad / pairs) if pairs > 0 else 0.0


def medrec_metrics(y_true: np.ndarray, scores: np.ndarray, tau: float, ddi: Optional[np.ndarray],
                   slices: dict[str, Sequence[int]], want: Sequence[str],
                   secondary_tau: Optional[float] = None
                   ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Mean metrics and per-sample arrays for ALL and every slice (``jaccard_rare``...).

    ``want`` names the metrics the caller needs; PRAUC (a sklearn call per sample) is
    computed only when some ``prauc*`` is wanted, so per-epoch validation stays cheap."""
    y_pred = scores >= tau
    per = set_metrics(y_true, y_pred)
    if any(w.startswith("prauc") for w in want):
        per["prauc"] = prauc(y_true, scores)
    means = {k: float(v.mean()) if len(v) else 0.0 for k, v in per.items()}
    means["ddi_rate"] = ddi_rate(y_pred, ddi)
    if secondary_tau is not None:
        sec = set_metrics(y_true, scores >= secondary_tau)
        for k in ("jaccard", "f1"):
            means[f"{k}_tau{secondary_tau:g}"] = float(sec[k].mean())
    per_out = {k: v for k, v in per.items()}
    for name, idx in slices.items():
        idx = np.asarray(idx, dtype=np.int64)
        means[f"n_{name}"] = float(len(idx))
        for k, v in per.items():
            if k == "avg_med":
                continue
            means[f"{k}_{name}"] = float(v[idx].mean()) if len(idx) else 0.0
            per_out[f"{k}_{name}"] = v[idx]
        means[f"ddi_rate_{name}"] = ddi_rate(y_pred[idx], ddi) if len(idx) else 0.0
    return means, per_out
