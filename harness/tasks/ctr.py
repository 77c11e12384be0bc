"""The ``ctr`` task: will this user like this movie? (CoRA spec §2.2 and §2.7).

Binary like/dislike prediction on MovieLens-100k, as TALLRec, CoLLM and CoRA evaluate
it: label = rating ≥ 4; a *global* temporal split (train = the first 80% of all ratings
by time, valid = the next 10%, test = the last 10%; ML-100k spans seven months, so
timestamp quantiles replace CoLLM's month slots); valid/test pairs whose user or item
never occurs in train are kept and flagged cold. Every pair gets a purely textual prompt
with the user's last ``history_len`` liked titles strictly before the pair's timestamp
(so the target and anything at or after its time never leak into it).

It lives in the harness, not a plugin, so every CTR method (CoRA, TALLRec-style LoRA,
CoLLM-style soft tokens, MF) shares one generator, one prompt and one scorer. Metrics
come from scikit-learn: AUC, UAUC (per-user AUC averaged over users with both labels)
and log loss, overall / warm / cold, with per-user values for the leaderboard's paired
tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from ..api import BenchError, ScoreResult, TaskData

PROMPT = ('#Question: A user has given high ratings to the following movies: {history}. '
          'Leverage the information to predict whether the user would enjoy the movie titled '
          '{target}? Answer with "Yes" or "No". \n#Answer:')
HISTORY_PREFIX = "#Question: A user has given high ratings to the following movies: {history}."
BOS = "<s>"
YES, NO = "Yes", "No"
SUBSETS = ("", "_warm", "_cold")
#: metric names the scorer returns (each overall, ``_warm`` and ``_cold``)
BASE_METRICS = ("auc", "uauc", "logloss")
#: language-model preservation metrics (LLM methods only, test split)
PPL_METRICS = ("ppl_base", "ppl_after", "ppl_drift", "llm_weights_changed")


@dataclass
class CTRPart:
    """One split part: (user, item, label) pairs with time, warm flag and prompt history."""

    user: np.ndarray
    item: np.ndarray
    label: np.ndarray           # float32 0/1
    timestamp: np.ndarray
    warm: np.ndarray            # bool: user and item both occur in the (full) train split
    history: list[list[int]]    # liked item ids strictly before the pair's time, oldest first

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class CTRData(TaskData):
    """The ``ctr`` task on a ratings table, with everything a text method needs."""

    n_users: int = 0
    n_items: int = 0
    titles: list[str] = field(default_factory=list)         # "Toy Story (1995)" per item id
    genres: list[list[str]] = field(default_factory=list)
    cf_train: Optional[CTRPart] = None  # the full train split (``train`` may be a sub-sample)
    heldout_items: np.ndarray = None    # items whose descriptions stage 0 never sees

    def prompt(self, part: CTRPart, k: int) -> str:
        return BOS + " " + PROMPT.format(history=self.history_text(part.history[k]),
                                         target=f'"{self.titles[part.item[k]]}"')

    def prompts(self, part: CTRPart) -> list[str]:
        return [self.prompt(part, k) for k in range(len(part))]

    def history_text(self, items: Sequence[int]) -> str:
        return ", ".join(f'"{self.titles[i]}"' for i in items)

    def description(self, item: int) -> str:
        g = self.genres[item]
        kinds = ", ".join(g) if g else "unknown"
        return f"{self.titles[item]} is a {kinds} movie."

    def pretrain_texts(self, max_history_texts: int = 3000, seed: int = 0) -> list[str]:
        """Unlabelled stage-0 text: descriptions of the non-held-out items and history
        lists (the prompt prefix, no target, no answer) of training events only."""
        held = set(self.heldout_items.tolist())
        texts = [self.description(i) for i in range(self.n_items) if i not in held]
        src = self.cf_train
        with_history = [k for k in range(len(src)) if src.history[k]]
        rng = np.random.default_rng(seed)
        pick = rng.permutation(with_history)[:max_history_texts]
        texts += [HISTORY_PREFIX.format(history=self.history_text(src.history[k]))
                  for k in sorted(pick.tolist())]
        return texts

    def heldout_texts(self) -> list[str]:
        return [self.description(int(i)) for i in self.heldout_items]

    def tokenizer_corpus(self) -> list[str]:
        """Every word the prompts and descriptions can contain (no <unk> anywhere)."""
        return ([self.description(i) for i in range(self.n_items)]
                + [PROMPT.format(history='"a", "b"', target='"c"'), YES, NO])


# --- building the task --------------------------------------------------------------------

def temporal_split(timestamp: np.ndarray, ratios: Sequence[float] = (0.8, 0.1, 0.1)
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train / valid / test by global time: a stable sort by timestamp cut at
    the cumulative ratios, so max(train time) ≤ min(valid time) ≤ … ≤ min(test time)."""
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) <= 0:
        raise BenchError(f"ctr split ratios must be three positive numbers summing to 1, "
                         f"got {list(ratios)}.")
    order = np.argsort(timestamp, kind="stable")
    n = len(order)
    a = int(round(ratios[0] * n))
    b = int(round((ratios[0] + ratios[1]) * n))
    return order[:a], order[a:b], order[b:]


def liked_histories(user: np.ndarray, item: np.ndarray, liked: np.ndarray,
                    timestamp: np.ndarray, max_len: int) -> list[list[int]]:
    """For every event, the user's last ``max_len`` liked items with a timestamp strictly
    earlier than the event's (ties excluded: same-second events are not 'before')."""
    out: list[list[int]] = [[] for _ in range(len(user))]
    order = np.lexsort((timestamp, user))
    start = 0
    while start < len(order):
        u = user[order[start]]
        end = start
        while end < len(order) and user[order[end]] == u:
            end += 1
        rows = order[start:end]
        done: list[int] = []   # liked items strictly before the current time
        pending: list[int] = []  # liked items at the current time (not yet "before")
        current = None
        for r in rows:
            if timestamp[r] != current:
                done += pending
                pending = []
                current = timestamp[r]
            out[r] = done[-max_len:] if max_len > 0 else []
            if liked[r]:
                pending.append(int(item[r]))
        start = end
    return out


def make_ctr(interactions: Any, *, like_threshold: float = 4.0, history_len: int = 10,
             n_train: Optional[int] = None, n_valid: Optional[int] = None,
             n_test: Optional[int] = None, heldout_frac: float = 0.1, seed: int = 0,
             name: str = "ml-100k-ctr") -> CTRData:
    """The ctr task from an :class:`harness.data.Interactions` with ratings, timestamps
    and item titles (``movie_title``, optional ``release_year`` and ``class`` genres).

    ``n_train``/``n_valid``/``n_test`` sub-sample a part (seeded; ``None`` keeps it
    whole); the CF model always sees the whole train split (``cf_train``), and warm/cold
    is defined against it.
    """
    d = interactions
    if d.rating is None or d.timestamp is None:
        raise BenchError(f"dataset '{name}': the ctr task needs ratings and timestamps.")
    feats = d.item_features
    if "movie_title" not in feats:
        raise BenchError(f"dataset '{name}': the ctr task needs item titles (an .item file "
                         "with a movie_title column).")
    years = feats.get("release_year")
    titles = []
    for i in range(d.n_items):
        t = str(feats["movie_title"][i]).strip()
        y = "" if years is None else str(years[i]).strip()
        if y and y.endswith(".0"):
            y = y[:-2]
        titles.append(f"{t} ({y})" if y and y.lower() != "nan" else t)
    classes = feats.get("class")
    genres = [str(classes[i]).split() if classes is not None else [] for i in range(d.n_items)]

    liked = d.rating >= like_threshold
    history = liked_histories(d.user, d.item, liked, d.timestamp, history_len)
    tr, va, te = temporal_split(d.timestamp)
    seen_u = np.zeros(d.n_users, bool)
    seen_u[d.user[tr]] = True
    seen_i = np.zeros(d.n_items, bool)
    seen_i[d.item[tr]] = True
    rng = np.random.default_rng(seed)

    def part(idx: np.ndarray, n: Optional[int], stream: int) -> CTRPart:
        if n is not None and n < len(idx):
            sub = np.random.default_rng([seed, stream]).choice(len(idx), n, replace=False)
            idx = idx[np.sort(sub)]
        return CTRPart(d.user[idx], d.item[idx], liked[idx].astype(np.float32),
                       d.timestamp[idx], seen_u[d.user[idx]] & seen_i[d.item[idx]],
                       [history[k] for k in idx])

    full_train = part(tr, None, 0)
    heldout = np.sort(rng.choice(d.n_items, max(1, int(round(heldout_frac * d.n_items))),
                                 replace=False))
    data = CTRData(name=name, task="ctr", train=part(tr, n_train, 1), valid=part(va, n_valid, 2),
                   test=part(te, n_test, 3), n_users=d.n_users, n_items=d.n_items,
                   titles=titles, genres=genres, cf_train=full_train, heldout_items=heldout)
    data.fingerprint = {"generator": "ctr", "events": d.fingerprint(), "like": like_threshold,
                        "history_len": history_len, "n_train": n_train, "n_valid": n_valid,
                        "n_test": n_test, "heldout_frac": heldout_frac, "seed": seed}
    data.protocol = {"split": "global temporal 0.8/0.1/0.1", "label": f"rating >= {like_threshold}",
                     "history_len": history_len, "n_train": n_train, "n_valid": n_valid,
                     "n_test": n_test, "metrics": "sklearn roc_auc_score / log_loss"}
    data.diagnostics = {
        "n_train_full": len(tr), "n_train": len(data.train), "n_valid": len(data.valid),
        "n_test": len(data.test), "positive_rate_train": float(full_train.label.mean()),
        "cold_valid": float(1 - data.valid.warm.mean()), "cold_test": float(1 - data.test.warm.mean()),
        "heldout_items": int(len(heldout)),
        "time_cuts": [float(d.timestamp[tr].max()), float(d.timestamp[va].max())],
    }
    return data


def load_ml100k_ctr(path: Optional[str] = None, **kwargs: Any) -> CTRData:
    """The ctr task on MovieLens-100k: the cached RecBole atomic files (ratings, and the
    ``.item`` file's titles, years and genres) or a local copy at ``path``."""
    from ..data.sources import load_ml100k

    return make_ctr(load_ml100k(path=path), name="ml-100k-ctr", **kwargs)


# --- metrics ------------------------------------------------------------------------------

def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(labels) == 0 or labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def _logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    if len(labels) == 0:
        return float("nan")
    prob = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -50, 50)))
    return float(log_loss(labels, prob, labels=[0, 1]))


def ctr_metrics(labels: np.ndarray, logits: np.ndarray, users: np.ndarray, warm: np.ndarray,
                per_user_metrics: bool = True
                ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """AUC, UAUC and log loss overall / warm / cold, plus per-user UAUC and log loss.

    UAUC is the mean of per-user AUCs over users with both labels in the subset (a user
    with one label has no AUC and is left out, as in CoLLM's evaluation code).
    ``per_user_metrics=False`` skips UAUC and the per-user values (validation during
    training needs only AUC, and the per-user loop dominates its cost).
    """
    labels = np.asarray(labels, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    users = np.asarray(users)
    warm = np.asarray(warm, dtype=bool)
    means: dict[str, float] = {}
    per_user: dict[str, dict[str, float]] = {}
    for suffix, mask in zip(SUBSETS, (np.ones_like(warm), warm, ~warm)):
        y, s, u = labels[mask], logits[mask], users[mask]
        means["auc" + suffix] = _auc(y, s)
        means["logloss" + suffix] = _logloss(y, s)
        if not per_user_metrics:
            continue
        aucs, losses = {}, {}
        for user in np.unique(u):
            m = u == user
            losses[str(int(user))] = _logloss(y[m], s[m])
            a = _auc(y[m], s[m])
            if not np.isnan(a):
                aucs[str(int(user))] = a
        means["uauc" + suffix] = float(np.mean(list(aucs.values()))) if aucs else float("nan")
        means["users_uauc" + suffix] = float(len(aucs))
        per_user["uauc" + suffix] = aucs
        per_user["logloss" + suffix] = losses
    return means, per_user


class CTRModel(Protocol):
    """What the ctr scorer needs from a trained model."""

    def predict(self, data: CTRData, part: str) -> np.ndarray:
        """Logits (before the sigmoid) for every pair of ``data.part(part)``."""


def score_ctr(model: CTRModel, data: CTRData, part: str, metrics: Sequence[str] = ()
              ) -> ScoreResult:
    """Scores every pair of the part; on test also asks the model for its language-model
    preservation figures (``model.preservation(data)``, LLM methods only). Validation
    computes UAUC only when a requested metric needs it (it is the slow part)."""
    p = data.part(part)
    logits = np.asarray(model.predict(data, part), dtype=np.float64)
    if logits.shape != (len(p),):
        raise BenchError(f"ctr model returned {logits.shape} scores for {len(p)} pairs.")
    need_users = part == "test" or any(m.startswith("uauc") for m in metrics)
    means, per_user = ctr_metrics(p.label, logits, p.user, p.warm, need_users)
    if part == "test" and hasattr(model, "preservation"):
        means.update(model.preservation(data))
    history = getattr(model, "history", None) or {}
    means.update({k: float(v) for k, v in history.items()
                  if k in ("best_epoch", "epochs_run") and isinstance(v, (int, float))})
    # the scored pairs behind the metrics, for the cell's samples.jsonl (bounded by the harness)
    samples = [{"id": i, "user": int(p.user[i]), "item": int(p.item[i]), "label": float(p.label[i]),
                "warm": bool(p.warm[i]), "score": float(logits[i])} for i in range(min(len(p), 200))]
    return ScoreResult(metrics=means, per_user=per_user, extra={"samples": samples})


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 64,
               device: Any = "cpu") -> float:
    """exp(mean next-token NLL) over ``texts`` (each prefixed with <s>), pads excluded."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            enc = tokenizer([f"{BOS} {t}" for t in texts[s:s + batch_size]], return_tensors="pt",
                            padding=True, add_special_tokens=False)
            ids, att = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            pos = (att.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=att, position_ids=pos).logits[:, :-1]
            nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:],
                                                    reduction="none")
            mask = att[:, 1:].float() * att[:, :-1].float()
            total += float((nll * mask).sum())
            count += float(mask.sum())
    return float(np.exp(total / max(count, 1.0)))


# --- training protocol --------------------------------------------------------------------

def fit_ctr(model: Any, train_epoch: Any, data: CTRData, ctx: Any, epochs: int,
            patience: int) -> dict[str, Any]:
    """The task's training protocol for every arm: epochs of ``train_epoch``, validation
    AUC after each, early stopping with ``patience``, best weights restored, budget and
    ``still_improving`` flag in the history (:func:`harness.training.fit`)."""
    from ..training import fit

    return fit(model, train_epoch, data, ctx, epochs, patience=patience)


def silent_context(data: CTRData, metric: str = "auc") -> Any:
    """A stand-in for the cell context that validates on ``data.valid`` without logging
    (a stage trained inside another method's cell, e.g. CoRA's CF model, must not mix
    its validation curve with the method's own or feed the tuner's pruner)."""
    from types import SimpleNamespace

    def validate(model: Any, _data: Any) -> float:
        p = data.valid
        return ctr_metrics(p.label, model.predict(data, "valid"), p.user, p.warm,
                           metric.startswith("uauc"))[0][metric]

    return SimpleNamespace(valid_metric=metric, validate=validate,
                           report=lambda *a, **k: None, log_metrics=lambda *a, **k: None)
