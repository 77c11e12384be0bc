"""Stage 1-2 of HNLMRec: profiles, then one semantic hard negative per generated slot,
by route A (the LLM writes a hard-negative item, the text is embedded) or route B (a
LoRA-tuned LLM encoder maps the query to a hard-negative embedding, supervised by
negatives mined from a pre-trained CF model). Results are cached on disk per
(LLM, data split, seed, route settings) so repeated cells never regenerate them.

Budget (2 CPU cores): ``negatives_per_user`` slots per user are generated, not one per
training pair per epoch; every training pair (u, i) uses the slot of u whose positive is
semantically closest to i.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from harness.api import get_or_build
from harness.blocks.negatives import PositiveSet, dns_negatives
from harness.llm import cache_key as llm_cache_key
from harness.llm import load_llm, sample_responses

from . import encoder
from .params import HNLMRecParams
from .profiles import (HARD_NEGATIVE_TAG, SideInfo, hard_negative_prompt, item_profile_prompt,
                       pretraining_data, user_profile_prompt)

CACHE_VERSION = "1"
#: the tensor fields of SemanticNegatives (stored with torch.save, read with weights_only)
TENSORS = ("vectors", "pair_keys", "pair_slot", "item_vectors", "slot_users")
CODE_BITS = 64  # the code vocabulary is fixed so one pre-trained LLM serves every setting
CODE_VOCAB = [f"cf{k}{s}" for k in range(CODE_BITS) for s in "pn"]


@dataclass
class SemanticNegatives:
    """Semantic hard negatives in the LLM's space, addressable per training pair."""

    vectors: torch.Tensor       # [S, D] one per generated slot
    pair_keys: torch.Tensor     # [P] sorted user * n_items + item of every training pair
    pair_slot: torch.Tensor     # [P] slot used by each training pair
    item_vectors: torch.Tensor  # [I, D] items' text embeddings in the same space
    slot_users: torch.Tensor    # [S] user of each slot
    texts: list[str] = field(default_factory=list)  # route A: the generated descriptions
    info: dict = field(default_factory=dict)
    source: str = "built"

    def lookup(self, users: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
        """Slot index of each (user, item) training pair; a pair outside training is an error."""
        key = users.cpu() * n_items + items.cpu()
        pos = torch.searchsorted(self.pair_keys, key).clamp(max=len(self.pair_keys) - 1)
        if not bool((self.pair_keys[pos] == key).all()):
            raise KeyError("hnlmrec: a (user, item) pair that is not a training positive has no "
                           "semantic negative")
        return self.pair_slot[pos]


# --- mapping a semantic negative to a real item --------------------------------------------------

def nearest_non_positive(vectors: torch.Tensor, users: torch.Tensor, item_vectors: torch.Tensor,
                         positives: PositiveSet, top: int = 64) -> torch.Tensor:
    """The real item closest (cosine) to each semantic negative among the items that are
    *not* training positives of its user: route A's "map the description to the item
    space", and the item a semantic negative stands for. Never returns a training
    positive (a user with every top item positive gets the nearest non-positive by a full
    scan)."""
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    it = torch.nn.functional.normalize(item_vectors.float(), dim=-1)
    sims = v @ it.T                                             # [S, I]
    top = min(top, sims.shape[1])
    cand = sims.topk(top, dim=1).indices                        # [S, top]
    bad = positives.contains(users, cand)
    first = (~bad).float().argmax(1)
    out = cand.gather(1, first.unsqueeze(1)).squeeze(1)
    for row in torch.nonzero(bad.all(1)).ravel().tolist():      # rare: scan every item
        order = sims[row].argsort(descending=True)
        ok = ~positives.contains(users[row].expand(len(order)), order)
        if not ok.any():
            raise RuntimeError(f"user {int(users[row])} has every item as a training positive")
        out[row] = order[ok][0]
    return out


# --- the pipeline ---------------------------------------------------------------------------

def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _simhash_codes(emb: torch.Tensor, bits: int) -> list[str]:
    """A CF embedding serialised as text: signs of a fixed random projection (SimHash),
    so nearby embeddings get similar token strings (the README's "[user embedding]" in
    the query, in a form a tiny word-level tokenizer can read)."""
    g = torch.Generator().manual_seed(12345)
    proj = torch.randn(emb.shape[1], CODE_BITS, generator=g)[:, :bits]
    signs = (emb.float().cpu() @ proj) > 0
    return [" ".join(f"cf{k}{'p' if s else 'n'}" for k, s in enumerate(row)) for row in signs.tolist()]


def _choose_slots(info: SideInfo, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` training positives per user (seeded): the pairs that get a generated
    semantic negative."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(info.n_users):
        hist = info.history[u]
        if not hist:
            continue
        pick = rng.choice(len(hist), size=min(k, len(hist)), replace=False)
        users += [u] * len(pick)
        items += [hist[j] for j in sorted(pick)]
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def _assign_pairs(dataset: Any, slot_users: np.ndarray, slot_items: np.ndarray,
                  item_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training pair (u, i) -> the slot of u whose positive is closest to i."""
    users, items = dataset.train_pairs()
    keys = users * dataset.n_items + items
    order = torch.argsort(keys)
    users, items, keys = users[order], items[order], keys[order]
    iv = torch.nn.functional.normalize(item_vectors.float(), dim=-1)
    slot = torch.empty(len(keys), dtype=torch.long)
    by_user: dict[int, list[int]] = {}
    for s, u in enumerate(slot_users.tolist()):
        by_user.setdefault(u, []).append(s)
    starts = torch.searchsorted(users, torch.arange(dataset.n_users + 1))
    for u, slots in by_user.items():
        a, b = int(starts[u]), int(starts[u + 1])
        if a == b:
            continue
        sims = iv[items[a:b]] @ iv[torch.as_tensor(slot_items[slots])].T   # [n_u, k]
        slot[a:b] = torch.as_tensor(slots)[sims.argmax(1)]
    return keys, slot


def _llm_inputs(info: SideInfo, p: HNLMRecParams):
    return pretraining_data(info, p.history_titles, CODE_VOCAB)


def cache_inputs(dataset: Any, p: HNLMRecParams, seed: int) -> dict:
    """Everything the semantic negatives depend on (the cache entry's inputs)."""
    info = SideInfo.from_dataset(dataset)
    pre = _llm_inputs(info, p)
    llm_key = llm_cache_key(p.llm, pre.corpus, pre.prompts, pre.responses)
    fields = ["route", "negatives_per_user", "history_titles", "gen_max_tokens",
              "gen_temperature", "official_code"]
    if p.route == "B":
        fields += ["backbone", "n_layers", "dim", "lr", "batch_size", "reg_weight",
                   "pretrain_epochs", "dns_candidates", "lora_r", "lora_alpha", "lora_dropout",
                   "lora_steps", "lora_lr", "lora_batch_size", "contrastive_tau", "code_tokens"]
    return {"v": CACHE_VERSION, "llm": llm_key, "llm_path": p.llm.path,
            "split": dataset.split_id, "seed": seed, "route": p.route,
            "params": {f: getattr(p, f) for f in fields}}


def profiles(llm, info: SideInfo, p: HNLMRecParams, cache_dir: Path, device: Any) -> tuple[list[str], list[str], dict]:
    """Item and user profiles written by the LLM (greedy), cached per LLM and data."""
    key = _digest({"llm": str(llm.path), "llm_info": llm.info.get("key"),
                   "items": [info.item_text(i) for i in range(info.n_items)],
                   "users": [info.user_text(u, p.history_titles) for u in range(info.n_users)],
                   "max_tokens": p.gen_max_tokens})
    inputs = {"profiles": key}

    def make(folder: Path) -> tuple[list[str], list[str], dict]:
        items, users, meta = _write_profiles(llm, info, p, device)
        (folder / "profiles.json").write_text(json.dumps({"items": items, "users": users}))
        return items, users, meta

    def load(folder: Path) -> tuple[list[str], list[str], dict]:
        stored = json.loads((folder / "profiles.json").read_text())
        return stored["items"], stored["users"], {"profiles_source": "cache"}

    value, _, _ = get_or_build(cache_dir, "hnlmrec", inputs, make, load,
                                     key=f"profiles-{key[:16]}", enabled=p.cache)
    return value


def _write_profiles(llm, info: SideInfo, p: HNLMRecParams, device: Any
                    ) -> tuple[list[str], list[str], dict]:
    t0 = time.perf_counter()
    item_prompts = [item_profile_prompt(info, i) for i in range(info.n_items)]
    user_prompts = [user_profile_prompt(info, u, p.history_titles) for u in range(info.n_users)]
    texts = generate(llm, item_prompts + user_prompts, p.gen_max_tokens, 0.0, p.gen_batch_size,
                     device)
    items, users = texts[:info.n_items], texts[info.n_items:]
    agree = np.mean([(info.top_genres(u, 1) or ["?"])[0].lower() in users[u]
                     for u in range(info.n_users) if info.history[u]] or [float("nan")])
    meta = {"profiles_source": "llm", "profiles_seconds": time.perf_counter() - t0,
            "profile_top_genre_agreement": float(agree)}
    return items, users, meta


def generate(llm, prompts: list[str], max_tokens: int, temperature: float, batch_size: int,
             device: Any) -> list[str]:
    out = []
    for start in range(0, len(prompts), batch_size):
        s = sample_responses(llm.model, llm.tokenizer, prompts[start:start + batch_size], n=1,
                             max_new_tokens=max_tokens, temperature=temperature, device=device)
        out += [t.strip() for t in s.texts]
    return out


def build(dataset: Any, p: HNLMRecParams, seed: int, cache_dir: Path, device: Any = "cpu",
          pretrain_cf: Optional[Callable[[], tuple[torch.Tensor, torch.Tensor]]] = None
          ) -> SemanticNegatives:
    """Semantic negatives for every training pair (from the cache when present).

    ``pretrain_cf`` (route B) returns the (user, item) embeddings of a CF model trained
    with uniform negatives; the hard-negative targets are mined from it.
    """
    inputs = cache_inputs(dataset, p, seed)

    def make(folder: Path) -> SemanticNegatives:
        with torch.random.fork_rng(devices=[]):  # same global RNG afterwards, cache hit or miss
            torch.manual_seed(seed)
            sem = _build(dataset, p, seed, cache_dir, device, pretrain_cf)
        torch.save({k: getattr(sem, k) for k in TENSORS}, folder / "tensors.pt")
        (folder / "meta.json").write_text(json.dumps({"texts": sem.texts, "info": sem.info},
                                                     default=float))
        return sem

    def load(folder: Path) -> SemanticNegatives:
        # tensors only (weights_only): a planted file fails to load instead of running code
        tensors = torch.load(folder / "tensors.pt", weights_only=True)
        meta = json.loads((folder / "meta.json").read_text())
        return SemanticNegatives(**{k: tensors[k] for k in TENSORS}, texts=meta["texts"],
                                 info=meta["info"], source="cache")

    sem, _, _ = get_or_build(cache_dir, "hnlmrec", inputs, make, load,
                                   key=f"{p.route}-{_digest(inputs)[:16]}", enabled=p.cache)
    return sem


def _build(dataset, p: HNLMRecParams, seed: int, cache_dir: Path, device, pretrain_cf) -> SemanticNegatives:
    t0 = time.perf_counter()
    info = SideInfo.from_dataset(dataset)
    pre = _llm_inputs(info, p)
    llm = load_llm(p.llm, pre.corpus, pre.prompts, pre.responses, cache_dir=cache_dir, device=device)
    meta: dict[str, Any] = {"llm_source": llm.source, "llm_params": llm.info.get("params"),
                            "llm_sft_loss_last": llm.info.get("sft_loss_last"),
                            "llm_seconds": time.perf_counter() - t0}
    item_prof, user_prof, pmeta = profiles(llm, info, p, cache_dir, device)
    meta.update(pmeta)
    slot_users, slot_items = _choose_slots(info, p.negatives_per_user, seed)
    t1 = time.perf_counter()
    texts: list[str] = []
    if p.route == "A":
        prompts = [hard_negative_prompt(user_prof[u], info, i, item_prof[i])
                   for u, i in zip(slot_users.tolist(), slot_items.tolist())]
        texts = generate(llm, prompts, p.gen_max_tokens, p.gen_temperature, p.gen_batch_size, device)
        pooling = "mean" if p.official_code else "last"
        vectors = encoder.embed(llm.model, llm.tokenizer, texts, pooling, device=device)
        item_vectors = encoder.embed(llm.model, llm.tokenizer,
                                     [info.item_text(i) for i in range(info.n_items)], pooling,
                                     device=device)
        known = {_norm(info.item_text(i)) for i in range(info.n_items)}
        meta["generated_is_real_item"] = float(np.mean([_norm(t) in known for t in texts]))
    else:
        if pretrain_cf is None:
            raise ValueError("route B needs a pre-trained CF model (pretrain_cf)")
        vectors, item_vectors, bmeta = _route_b(dataset, info, user_prof, slot_users, slot_items,
                                                llm, p, seed, device, pretrain_cf)
        meta.update(bmeta)
    meta["generation_seconds"] = time.perf_counter() - t1
    keys, slot = _assign_pairs(dataset, slot_users, slot_items, item_vectors)
    meta.update(_diagnostics(dataset, vectors, torch.as_tensor(slot_users), item_vectors))
    meta["slots"] = len(slot_users)
    meta["semantic_seconds"] = time.perf_counter() - t0
    return SemanticNegatives(vectors, keys, slot, item_vectors, torch.as_tensor(slot_users),
                             texts, meta)


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("'", " ' ").split())


def _diagnostics(dataset, vectors, slot_users, item_vectors) -> dict[str, float]:
    """Where the semantic negatives land among real items: how often the nearest item is
    a training positive (before exclusion), and how often the nearest non-positive is a
    held-out (validation/test) positive, i.e. a false hard negative."""
    from harness.api import HeldOutPositives

    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    nearest = (v @ torch.nn.functional.normalize(item_vectors.float(), dim=-1).T).argmax(1)
    mapped = nearest_non_positive(vectors, slot_users, item_vectors, dataset.positive_set)
    hits, seen = HeldOutPositives(dataset).count(slot_users, mapped)
    return {"semantic_nearest_is_train_positive":
                float(dataset.positive_set.contains(slot_users, nearest).float().mean()),
            "semantic_false_neg_rate": hits / max(seen, 1)}


def _route_b(dataset, info: SideInfo, user_prof, slot_users, slot_items, llm, p: HNLMRecParams,
             seed: int, device, pretrain_cf):
    """CF-supervised LoRA fine-tuning of the LLM encoder (pairwise contrastive loss), then
    one hard-negative embedding per slot."""
    t0 = time.perf_counter()
    user_emb, item_emb = pretrain_cf()
    meta: dict[str, Any] = {"pretrain_seconds": time.perf_counter() - t0}
    users = torch.as_tensor(slot_users)
    rng = torch.Generator().manual_seed(seed)
    mined = dns_negatives(dataset.positive_set, users, 1, p.dns_candidates, user_emb, item_emb,
                          rng)[:, 0]
    u_code = _simhash_codes(user_emb, p.code_tokens)
    i_code = _simhash_codes(item_emb, p.code_tokens)
    passage = lambda j: f"{info.item_text(j)} code {i_code[j]}"  # noqa: E731
    queries = [f"Instruct : write the hard negative of this user Query : {user_prof[u]} code "
               f"{u_code[u]} LIKED : {info.item_text(i)} code {i_code[i]} {HARD_NEGATIVE_TAG}"
               for u, i in zip(slot_users.tolist(), slot_items.tolist())]
    targets = [passage(j) for j in mined.tolist()]
    negatives = [passage(i) for i in slot_items.tolist()]

    model = encoder.with_lora(llm.model, p.lora_r, p.lora_alpha, p.lora_dropout, seed)
    model.to(device).train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=p.lora_lr, weight_decay=0.0)
    losses = []
    t1 = time.perf_counter()
    for _ in range(p.lora_steps):
        idx = torch.randint(len(queries), (min(p.lora_batch_size, len(queries)),), generator=rng)
        enc = lambda texts, n: {k: v.to(device) for k, v in  # noqa: E731
                                encoder.encode_texts(llm.tokenizer, texts, n).items()}
        q = encoder.pooled(model, enc([queries[i] for i in idx], 96), "last")
        t = encoder.pooled(model, enc([targets[i] for i in idx], 64), "last")
        n = encoder.pooled(model, enc([negatives[i] for i in idx], 64), "last")
        loss = encoder.pairwise_contrastive_loss(q, t, n, p.contrastive_tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    meta.update({"lora_seconds": time.perf_counter() - t1,
                 "lora_loss_first": losses[0] if losses else float("nan"),
                 "lora_loss_last": float(np.mean(losses[-10:])) if losses else float("nan"),
                 "lora_trainable_params": sum(q.numel() for q in params)})
    pooling = "mean" if p.official_code else "last"   # the released inference script mean-pools
    vectors = encoder.embed(model, llm.tokenizer, queries, pooling, max_length=96, device=device)
    item_vectors = encoder.embed(model, llm.tokenizer, [passage(j) for j in range(info.n_items)],
                                 pooling, max_length=64, device=device)
    # the CF-mined targets are DNS negatives: how often they are false (held-out) positives
    meta["mined_target_is_held_out_positive"] = _held_out_share(dataset, users, mined)
    return vectors, item_vectors, meta


def _held_out_share(dataset, users, items) -> float:
    from harness.api import HeldOutPositives

    hits, seen = HeldOutPositives(dataset).count(users, items)
    return hits / max(seen, 1)
