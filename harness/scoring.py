"""Full-ranking evaluation: chunked top-K in torch, metrics by ranx.

Why this shape: ranx is slow to build runs for many queries and needs string ids, so we
hand it only the top-K lists (never full score matrices). Ties are broken by item id in
torch, and ranx sees strictly decreasing scores (K, K-1, ...) so its unstable sort can't
reorder ties. Results therefore do not depend on the chunk (batch) size.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import scipy.sparse as sp
import torch

from .api import BenchError, ScoreResult
from .names import metric_name_from_mlflow, mlflow_name  # noqa: F401  (re-exported)

METRIC_RE = re.compile(r"^(?P<base>[a-z][a-z0-9_]*)(@(?P<k>\d+))?$")
RANX_METRICS = ("ndcg", "recall", "hit_rate", "mrr", "precision", "map")


@dataclass(frozen=True)
class MetricName:
    base: str
    k: Optional[int]

    @classmethod
    def parse(cls, text: str) -> "MetricName":
        m = METRIC_RE.match(text.strip())
        if not m:
            raise BenchError(f"'{text}' is not a metric name (expected e.g. 'ndcg@10' or 'mrr').")
        return cls(m["base"], int(m["k"]) if m["k"] else None)

    def __str__(self) -> str:
        return f"{self.base}@{self.k}" if self.k else self.base




def max_cutoff(metrics: Iterable[str], default: int = 10) -> int:
    ks = [MetricName.parse(m).k for m in metrics]
    return max([k for k in ks if k] or [default])


def topk_with_tiebreak(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k per row, ties broken by the smaller item id, exactly.

    ``torch.topk`` picks arbitrarily among ties, so we take one spare candidate, order
    the k+1 by (score desc, id asc), and fall back to a full stable sort for the rows
    whose tie block straddles the k-th place (the only rows where the spare candidate
    can't tell which tied items belong to the top k). One spare rather than many: topk's
    cost grows with its k (k+32 made it 2.5x slower on ml-100k), and boundary ties are
    rare with learned float scores.
    """
    n_items = scores.shape[1]
    k = min(k, n_items)
    m = min(n_items, k + 1)
    vals, idx = torch.topk(scores, m, dim=1)
    by_id = torch.argsort(idx, dim=1)
    idx, vals = idx.gather(1, by_id), vals.gather(1, by_id)
    by_val = torch.argsort(vals, dim=1, descending=True, stable=True)
    idx, vals = idx.gather(1, by_val)[:, :k], vals.gather(1, by_val)
    spill = (vals[:, m - 1] == vals[:, k - 1]) if m < n_items else torch.zeros(len(vals), dtype=torch.bool)
    vals = vals[:, :k]
    if spill.any():
        rows = spill.nonzero().ravel()
        order = torch.argsort(scores[rows], dim=1, descending=True, stable=True)[:, :k]
        idx[rows] = order
        vals[rows] = scores[rows].gather(1, order)
    return vals, idx


def full_ranking_topk(model, users: np.ndarray, exclude: sp.csr_matrix, k: int,
                      chunk_size: int = 1024, device: torch.device | str = "cpu",
                      with_scores: bool = False) -> tuple[torch.Tensor, ...]:
    """Top-k items per user over all items, with ``exclude``'s items masked.

    Returns (items LongTensor[n, k], valid BoolTensor[n, k]); ``valid`` is False where a
    user has fewer than k rankable items (those slots hold masked items). With
    ``with_scores`` a third tensor holds the model's scores of those items (float32).

    ``model.score`` must return a fresh tensor (a matmul result, an indexed copy): it is
    overwritten in place (NaN and excluded items set to -inf). Views are copied first.
    """
    out_items, out_valid, out_scores = [], [], []
    with torch.no_grad():
        for start in range(0, len(users), chunk_size):
            chunk = users[start:start + chunk_size]
            scores = model.score(torch.as_tensor(chunk, dtype=torch.long, device=device)).float()
            if scores._base is not None:  # a view of something the model keeps: don't write into it
                scores = scores.clone()
            # in place: an out-of-place copy of a 1024 x 50k chunk cost a third of the
            # whole top-K pass (benchmarks/scale_eval.py)
            torch.nan_to_num_(scores, nan=-torch.inf)
            rows = exclude[chunk]
            r = torch.from_numpy(np.repeat(np.arange(len(chunk)), np.diff(rows.indptr)))
            c = torch.from_numpy(rows.indices.astype(np.int64))
            scores[r.to(scores.device), c.to(scores.device)] = -torch.inf
            vals, idx = topk_with_tiebreak(scores, k)
            out_items.append(idx.cpu())
            out_valid.append(torch.isfinite(vals).cpu())
            if with_scores:
                out_scores.append(vals.cpu())
    if out_valid and not any(bool(v.any()) for v in out_valid):
        raise BenchError("the model scored no item with a finite score for any user (all NaN "
                         "or -inf): training diverged or the model is broken.")
    if not out_items:
        empty = (torch.empty(0, k, dtype=torch.long), torch.empty(0, k, dtype=torch.bool))
        return (*empty, torch.empty(0, k)) if with_scores else empty
    if with_scores:
        return torch.cat(out_items), torch.cat(out_valid), torch.cat(out_scores)
    return torch.cat(out_items), torch.cat(out_valid)


def _ranx_lists(users: np.ndarray, items: np.ndarray, valid: np.ndarray, truth: sp.csr_matrix):
    """Qrels and run as the numba typed lists ranx's metric functions take: per user an
    array of [doc id, relevance] rows and one of [doc id, score] rows sorted by score
    (descending) -- what ``Qrels``/``Run.to_typed_list`` hand them inside
    ``ranx.evaluate``. Built in one compiled call from flat arrays, because building
    them through ``Qrels.from_dict``/``Run.from_dict`` (string ids, one numba dispatch per
    element) cost ~0.3 s per evaluation on ml-100k, the bulk of full-ranking evaluation.
    Ids are item ids as floats (ranx hashes string ids to floats; only equality matters).
    An empty top-K list becomes one [-1, 0] row, which matches no item."""
    starts, stops = truth.indptr[users], truth.indptr[users + 1]
    rel_ids = np.concatenate([truth.indices[a:b] for a, b in zip(starts, stops)]).astype(np.float64)
    rel_off = np.concatenate([[0], np.cumsum(stops - starts)]).astype(np.int64)
    qrels_flat = np.column_stack([rel_ids, np.ones(len(rel_ids))])
    k = items.shape[1]
    counts = valid.sum(1)
    rank = np.broadcast_to(np.arange(k), items.shape)
    run_ids, run_scores = items[valid].astype(np.float64), (k - rank[valid]).astype(np.float64)
    empty = counts == 0
    if empty.any():  # ranx needs a non-empty list; a placeholder that matches nothing
        pad_rows = np.flatnonzero(empty)
        at = np.cumsum(counts)[pad_rows] - counts[pad_rows]
        run_ids = np.insert(run_ids, at, -1.0)
        run_scores = np.insert(run_scores, at, 0.0)
        counts = np.maximum(counts, 1)
    run_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    run_flat = np.column_stack([run_ids, run_scores])
    return _split_rows(qrels_flat, rel_off), _split_rows(run_flat, run_off)


def _split_rows(flat: np.ndarray, offsets: np.ndarray):
    from .typed_rows import split_rows

    return split_rows(flat, offsets)


def ranx_evaluate(users: np.ndarray, items: torch.Tensor, valid: torch.Tensor,
                  truth: sp.csr_matrix, metrics: list[str]
                  ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-user ranx metrics for top-K lists against ``truth`` rows.

    Calls ranx's metric kernels (``ranx.metrics``, the functions ``ranx.evaluate``
    dispatches to) on typed lists built directly from the top-K arrays; see
    :func:`_ranx_lists` for why not through ``Qrels``/``Run``."""
    from ranx.meta.evaluate import extract_metric_and_params
    from ranx.metrics import metric_switch

    if len(users) == 0:
        raise BenchError("no user has a ground-truth item in this split; nothing to evaluate.")
    users = np.asarray(users, dtype=np.int64)
    qrels, run = _ranx_lists(users, items.numpy(), valid.numpy(), truth)
    keys = [str(u) for u in users]
    by_key = np.argsort(np.array(keys))  # ranx averages in query-id (string) order: same bits
    means, per_user = {}, {}
    with warnings.catch_warnings():  # numba's uint64->int64 cast note inside ranx's ndcg
        warnings.simplefilter("ignore")
        for m in metrics:
            base, k, rel_lvl = extract_metric_and_params(m)
            scores = np.asarray(metric_switch(base)(qrels, run, k, rel_lvl), dtype=np.float64)
            means[m] = float(np.mean(scores[by_key]))
            per_user[m] = dict(zip(keys, scores.tolist()))
    return means, per_user


class SequenceScorer:
    """Adapts a sequential model to the per-user ``score(users)`` the ranking loop calls:
    a user's input is its history before ``part`` (train for valid, train+valid for test),
    truncated to the model's ``max_len`` and left-padded (harness.blocks.sequence).

    Two things keep full-ranking evaluation cheap on CPU without changing what a user is
    scored from: histories are encoded ``encode_chunk`` users at a time, whatever the
    ranking chunk (a transformer over 128 x 50 positions keeps its activations in cache:
    0.58 -> 0.23 s for ml-100k's 943 users), and, for models that declare
    ``trims_padding`` (their output does not depend on leading padding: SASRec's
    right-aligned positions and masked keys, GRU4Rec's zero state through zero inputs),
    each user is encoded in a window cut to its own history length rounded up to
    ``bucket`` tokens, so all-padding columns are not computed. The window depends only on
    the user, never on which users share a chunk (tests/test_zoo_models.py: same top-K
    lists for any ranking or encoding chunk, scores equal up to float rounding)."""

    def __init__(self, model, dataset, part: str, encode_chunk: int = 128, bucket: int = 10) -> None:
        from .blocks.sequence import PAD, history_tokens

        self.model = model
        self.tokens = history_tokens(dataset, part, model.max_len)
        self.encode_chunk = encode_chunk
        width = self.tokens.shape[1]
        if getattr(model, "trims_padding", False):
            lengths = (self.tokens != PAD).sum(1)
            self.width = ((lengths + bucket - 1) // bucket * bucket).clamp(1, width)
        else:
            self.width = torch.full((len(self.tokens),), width)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        idx = users.cpu()
        tokens, width = self.tokens[idx].to(users.device), self.width[idx]
        out = None
        for w in width.unique().tolist():
            rows = (width == w).nonzero().squeeze(1).to(users.device)
            for i in range(0, len(rows), self.encode_chunk):
                r = rows[i:i + self.encode_chunk]
                scores = self.model.score_sequences(tokens[r][:, -w:])
                if out is None:
                    out = scores.new_empty((len(tokens), scores.shape[1]))
                out[r] = scores
        return out


def score_ranking(model, dataset, part: str, metrics: list[str], registry_metrics: dict,
                  chunk_size: int = 1024, device: torch.device | str = "cpu") -> ScoreResult:
    """The default scorer for ranking tasks (topk, sequential, signed).

    For task ``sequential`` a model with ``score_sequences`` is scored from each user's
    chronological history (see :class:`SequenceScorer`); exclusion is unchanged."""
    if dataset.task == "sequential" and hasattr(model, "score_sequences"):
        model = SequenceScorer(model, dataset, part)
    truth = dataset.matrix(part)
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    k = max_cutoff(metrics)
    items, valid, top_scores = full_ranking_topk(model, users, dataset.exclusion_matrix(part), k,
                                                 chunk_size=chunk_size, device=device,
                                                 with_scores=True)
    ranx_names = [m for m in metrics if registry_metrics[MetricName.parse(m).base].ranx]
    means, per_user = (ranx_evaluate(users, items, valid, truth, ranx_names)
                       if ranx_names else ({}, {}))
    for m in metrics:
        name = MetricName.parse(m)
        spec = registry_metrics[name.base]
        if spec.ranx:
            continue
        values = np.asarray(spec.compute(users=users, items=items, valid=valid,
                                         dataset=dataset, part=part, k=name.k), dtype=float)
        # NaN marks a user the metric does not cover (e.g. sparse-user NDCG): averaged out
        kept = ~np.isnan(values)
        means[m] = float(values[kept].mean()) if kept.any() else float("nan")
        per_user[m] = {str(u): float(v) for u, v, ok in zip(users, values, kept) if ok}
    return ScoreResult(metrics=means, per_user=per_user, topk=(users, items, valid),
                       extra={"topk_scores": top_scores})


def trec_field(text: object) -> str:
    """One whitespace-free TREC field: whitespace and ``%`` are percent-encoded (``a b`` ->
    ``a%20b``), so a label or id with spaces keeps the six-column format; ``bench
    evaluate`` decodes them (:func:`trec_unfield`)."""
    from urllib.parse import quote

    return re.sub(r"[%\s]", lambda m: quote(m.group(), safe=""), str(text))


def trec_unfield(field: str) -> str:
    """Inverse of :func:`trec_field`."""
    from urllib.parse import unquote

    return unquote(field) if "%" in field else field


def write_trec_run(path, users: np.ndarray, items: torch.Tensor, valid: torch.Tensor,
                   dataset, tag: str, scores: Optional[torch.Tensor] = None) -> None:
    """Top-K lists in TREC run format with the dataset's original ids, so any tool
    (trec_eval, ranx, pytrec_eval) can recompute the metrics. The score column holds the
    model's scores (``%.9g`` keeps a float32 exactly, so the order, ties broken by the
    smaller item id, survives a round trip) and ranx's score-based fusion can use them;
    without ``scores`` it holds ``K - rank``. Fields are :func:`trec_field`-quoted (a
    label with a space stays one field)."""
    k = items.shape[1]
    u_tok = [trec_field(t) for t in dataset.data.user_tokens]
    i_tok = [trec_field(t) for t in dataset.data.item_tokens]
    tag = trec_field(tag)
    score_rows = scores.tolist() if scores is not None else None
    with open(path, "w") as f:
        for row, u in enumerate(users):
            for rank, (i, ok) in enumerate(zip(items[row].tolist(), valid[row].tolist())):
                if ok:
                    score = f"{score_rows[row][rank]:.9g}" if score_rows else str(k - rank)
                    f.write(f"{u_tok[u]} Q0 {i_tok[i]} {rank + 1} {score} {tag}\n")
