"""The arms of the personalisation board, each a :class:`Personalizer` over one frozen base LM.

* :class:`NoPersonalization` – the base model's greedy output;
* :class:`RAGBM25` – the top-k of the user's history by BM25 (``bm25s``) prepended to the
  prompt (costs prompt tokens);
* :class:`LoRAPerUser` – one peft LoRA adapter trained per user on their history (costs
  the adapter's bytes); the step count is chosen on validation users;
* :class:`StyleVector` – mean activation difference between the user's own outputs and the
  base model's own outputs, added at one layer with scale α (costs D floats per user).

A personaliser's options (RAG's k, StyleVector's (layer, α)) are chosen on the validation
users' held-out items by the suite's validation metric; test users are never looked at.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import torch

from harness.api import BenchError
from harness.llm import encode_pairs, response_logprobs, sample_responses
from harness.tasks.personalization import PersonalizationData, User, score_predictions

from .steering import decoder_layers, sequence_activations, steer, style_vector


def greedy(model, tok, prompts: Sequence[str], max_new_tokens: int, device,
           batch_size: int = 128) -> list[str]:
    texts: list[str] = []
    for s in range(0, len(prompts), batch_size):
        texts += sample_responses(model, tok, list(prompts[s:s + batch_size]), 1,
                                  max_new_tokens, 0.0, device).texts
    return [t.strip() for t in texts]


def _regroup(users: Sequence[User], flat: Sequence[str]) -> list[list[str]]:
    out, i = [], 0
    for u in users:
        out.append(list(flat[i:i + len(u.queries)]))
        i += len(u.queries)
    return out


class Personalizer:
    """What ``bench_train`` returns: ``predict(users)`` gives each user's outputs for
    their queries; ``storage_bytes`` and ``added_tokens`` describe the last predict call
    (per user and per query); ``history`` holds the choices made on validation."""

    def __init__(self, model, tokenizer, data: PersonalizationData, max_new_tokens: int, device):
        self.model, self.tok, self.data = model, tokenizer, data
        self.max_new_tokens, self.device = max_new_tokens, device
        self.storage_bytes: list[float] = []
        self.added_tokens: list[float] = []
        self.history: dict[str, Any] = {}
        self.choice: Any = None

    def candidates(self) -> list[Any]:
        return [None]

    def predict(self, users: Sequence[User]) -> list[list[str]]:
        raise NotImplementedError

    def select(self, valid_users: Sequence[User], metric: str, report=None) -> None:
        """Pick the candidate with the best ``metric`` on the validation users."""
        cands = self.candidates()
        if len(cands) == 1 or not valid_users:
            self.choice = cands[0]
            return
        best, best_val = None, -math.inf
        for i, c in enumerate(cands):
            self.choice = c
            means, _ = score_predictions(valid_users, self.predict(valid_users))
            if metric not in means:
                raise BenchError(f"valid_metric '{metric}' is not a personalisation metric "
                                 f"(known: {', '.join(sorted(means))}).")
            if report:
                report(f"valid_{metric}", means[metric], i)
            self.history.setdefault("valid_curve", []).append((c, means[metric]))
            if means[metric] > best_val:
                best, best_val = c, means[metric]
        self.choice = best
        self.history["valid_best"] = best_val


class NoPersonalization(Personalizer):
    def predict(self, users):
        prompts = [q.prompt for u in users for q in u.queries]
        self.storage_bytes = [0.0] * len(users)
        self.added_tokens = [0.0] * len(prompts)
        return _regroup(users, greedy(self.model, self.tok, prompts, self.max_new_tokens,
                                      self.device))


class RAGBM25(Personalizer):
    """BM25 over the user's history (inputs, outputs or both), top-k outputs prepended."""

    def __init__(self, *a, ks: Sequence[int] = (2,), index: str = "input", **kw):
        super().__init__(*a, **kw)
        self.ks, self.index = list(ks), index

    def candidates(self):
        return self.ks

    def retrieve(self, user: User, query: str, k: int):
        import logging

        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import
        pattern = r"(?u)\b\w+\b"  # keep one-character words (ratings, digits)
        docs = [{"input": e.prompt, "output": e.response,
                 "both": f"{e.prompt} {e.response}"}[self.index] for e in user.history]
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(docs, stopwords=None, token_pattern=pattern,
                                       show_progress=False), show_progress=False)
        q = bm25s.tokenize([query], stopwords=None, token_pattern=pattern, return_ids=False,
                           show_progress=False)
        k = min(k, len(docs))
        idx, _ = retriever.retrieve(q, k=k, show_progress=False)
        # most relevant last, next to the prompt
        return [user.history[int(i)] for i in reversed(idx[0].tolist())]

    def predict(self, users):
        k = self.choice or self.ks[0]
        prompts, added = [], []
        for u in users:
            for q in u.queries:
                p = self.data.rag_prompt(q.prompt, self.retrieve(u, q.prompt, k))
                prompts.append(p)
                added.append(float(len(self.tok(p, add_special_tokens=False)["input_ids"])
                                   - len(self.tok(q.prompt, add_special_tokens=False)["input_ids"])))
        self.storage_bytes = [0.0] * len(users)
        self.added_tokens = added
        return _regroup(users, greedy(self.model, self.tok, prompts, self.max_new_tokens,
                                      self.device))


class LoRAPerUser(Personalizer):
    """One LoRA adapter per user, trained on the user's history (full batch, AdamW).

    The number of steps is early-stopped on the validation users (every ``eval_every``
    steps, ``patience`` evaluations without improvement) and then used for every test
    user; ``history['best_steps']`` records it (equal to ``max_steps``: budget too small).
    """

    def __init__(self, *a, r: int = 8, lora_alpha: int = 16, target_modules=None,
                 lr: float = 1e-2, max_steps: int = 200, eval_every: int = 20,
                 patience: int = 3, seed: int = 0, **kw):
        super().__init__(*a, **kw)
        self.r, self.lora_alpha, self.target_modules = r, lora_alpha, target_modules
        self.lr, self.max_steps, self.eval_every, self.patience = lr, max_steps, eval_every, patience
        self.seed = seed
        self.steps = max_steps

    def _adapter(self, user_index: int):
        from peft import LoraConfig, get_peft_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + user_index)
            cfg = LoraConfig(r=self.r, lora_alpha=self.lora_alpha, lora_dropout=0.0,
                             target_modules=self.target_modules, task_type="CAUSAL_LM")
            model = get_peft_model(copy.deepcopy(self.model), cfg)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=self.lr)
        return model, opt

    def _train(self, model, opt, user: User, steps: int) -> None:
        batch = encode_pairs(self.tok, [e.prompt for e in user.history],
                             [e.response for e in user.history])
        ids, att = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        mask = batch["response_mask"][:, 1:].to(self.device).float()
        model.train()
        for _ in range(steps):
            loss = -(response_logprobs(model, ids, att) * mask).sum() / mask.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()

    @staticmethod
    def _bytes(model) -> float:
        return float(sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad))

    def _generate(self, model, user: User) -> list[str]:
        return greedy(model, self.tok, [q.prompt for q in user.queries], self.max_new_tokens,
                      self.device)

    def select(self, valid_users, metric, report=None):
        if not valid_users:
            return
        adapters = [self._adapter(i) for i in range(len(valid_users))]
        best, best_steps, bad, steps = -math.inf, 0, 0, 0
        while steps < self.max_steps and bad < self.patience:
            for (m, o), u in zip(adapters, valid_users):
                self._train(m, o, u, self.eval_every)
            steps += self.eval_every
            preds = [self._generate(m, u) for (m, _), u in zip(adapters, valid_users)]
            value = score_predictions(valid_users, preds)[0][metric]
            if report:
                report(f"valid_{metric}", value, steps)
            self.history.setdefault("valid_curve", []).append((steps, value))
            if value > best:
                best, best_steps, bad = value, steps, 0
            else:
                bad += 1
        self.steps = best_steps
        self.history.update(best_steps=best_steps, valid_best=best,
                            best_at_budget_end=float(best_steps >= self.max_steps))

    def predict(self, users):
        out, self.storage_bytes = [], []
        for i, u in enumerate(users):
            model, opt = self._adapter(10_000 + i)
            self._train(model, opt, u, self.steps)
            out.append(self._generate(model, u))
            self.storage_bytes.append(self._bytes(model))
        self.added_tokens = [0.0] * sum(len(u.queries) for u in users)
        return out


#: the base model's own greedy outputs, per (base-model key, prompts, length): cells of one
#: process that share a base model (every StyleVector arm of a seed) generate them once
_OWN_OUTPUTS: dict[tuple, list[str]] = {}


class StyleVector(Personalizer):
    """Training-free steering: s_u = mean_i[a_l(x_i ⊕ y_i) − a_l(x_i ⊕ ŷ_i)], added as
    α·s_u to block l's output while generating.

    ``negatives``: ``model`` (ŷ_i = the base model's greedy output; the paper),
    ``none`` (positive mean only; ablation) or ``other_users`` (mean activation of the
    other users' histories in the same split; ablation). ``positions`` lists extraction
    positions; with several, (position, layer, α) are chosen together on validation.
    """

    def __init__(self, *a, layers: Sequence[int] = (1, 2), alphas: Sequence[float] = (1.0,),
                 positions: Sequence[str] = ("last",), negatives: str = "model",
                 extractor: str = "mean_diff", all_positions: bool = False,
                 model_key: str | None = None, **kw):
        super().__init__(*a, **kw)
        n = len(decoder_layers(self.model))
        bad = [l for l in layers if not 0 <= l < n]
        if bad:
            raise BenchError(f"stylevector: layer(s) {bad} out of range (the model has {n} layers).")
        self.layers, self.alphas, self.positions = list(layers), list(alphas), list(positions)
        self.negatives, self.extractor = negatives, extractor
        self.all_positions, self.model_key = all_positions, model_key
        self._cache: dict[tuple, dict[tuple[str, int], torch.Tensor]] = {}

    def candidates(self):
        return [(p, l, a) for p in self.positions for l in self.layers for a in self.alphas]

    def own_outputs(self, prompts: list[str]) -> list[str]:
        key = (self.model_key, tuple(prompts), self.max_new_tokens)
        if self.model_key is not None and key in _OWN_OUTPUTS:
            return _OWN_OUTPUTS[key]
        own = greedy(self.model, self.tok, prompts, self.max_new_tokens, self.device)
        if self.model_key is not None:
            while len(_OWN_OUTPUTS) >= 4:  # a few base models (one per seed) at a time
                _OWN_OUTPUTS.pop(next(iter(_OWN_OUTPUTS)))
            _OWN_OUTPUTS[key] = own
        return own

    def vectors(self, users: Sequence[User]) -> dict[tuple[str, int], torch.Tensor]:
        """[len(users), D] style vectors per (position, layer) (cached per user set)."""
        key = tuple(u.uid for u in users)
        if key in self._cache:
            return self._cache[key]
        prompts = [e.prompt for u in users for e in u.history]
        owner = torch.tensor([i for i, u in enumerate(users) for _ in u.history])
        own = self.own_outputs(prompts) if self.negatives == "model" else None
        vecs = {}
        for position in self.positions:
            pos = sequence_activations(self.model, self.tok, prompts,
                                       [e.response for u in users for e in u.history],
                                       self.layers, position, device=self.device)
            neg = None if own is None else sequence_activations(
                self.model, self.tok, prompts, own, self.layers, position, device=self.device)
            for l in self.layers:
                rows = []
                for i in range(len(users)):
                    mine = owner == i
                    if self.negatives == "model":
                        rows.append(style_vector(pos[l][mine], neg[l][mine], self.extractor))
                    elif self.negatives == "other_users":
                        if len(users) < 2:
                            raise BenchError("stylevector: negatives 'other_users' needs >= 2 users.")
                        rows.append(style_vector(pos[l][mine], pos[l][~mine], self.extractor))
                    elif self.negatives == "none":
                        rows.append(style_vector(pos[l][mine], None))
                    else:
                        raise BenchError(f"stylevector: unknown negatives '{self.negatives}'.")
                vecs[(position, l)] = torch.stack(rows)
        self._cache = {key: vecs}
        return vecs

    def predict(self, users):
        position, layer, alpha = self.choice or self.candidates()[0]
        vecs = self.vectors(users)[(position, layer)]
        rows = torch.cat([vecs[i].expand(len(u.queries), -1) for i, u in enumerate(users)])
        prompts = [q.prompt for u in users for q in u.queries]
        texts: list[str] = []
        for s in range(0, len(prompts), 128):  # one steering row per batch row
            with steer(self.model, layer, rows[s:s + 128].to(self.device), alpha,
                       self.all_positions):
                texts += sample_responses(self.model, self.tok, prompts[s:s + 128], 1,
                                          self.max_new_tokens, 0.0, self.device).texts
        self.storage_bytes = [float(vecs.shape[1] * vecs.element_size())] * len(users)
        self.added_tokens = [0.0] * len(prompts)
        return _regroup(users, [t.strip() for t in texts])
