"""Stage 1 of CoRA (spec §2.3): a matrix-factorisation CF model trained on the labelled
train pairs with BCE, early-stopped on validation AUC, then frozen.

The same model is the ``ctr_mf`` arm of the leaderboard and the source of the frozen
(user, item) embeddings that CoRA's generator and CoLLM's soft tokens read. It is
trained inside a forked RNG seeded by the cell seed, so the ``ctr_mf`` cell and a CoRA
cell with the same seed get the same CF model, which is cached by content hash.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from harness.api import Params
from harness.blocks.mf import MF
from harness.tasks.ctr import CTRData, fit_ctr, silent_context


class CFParams(Params):
    dim: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(1024, ge=1)
    epochs: int = Field(300, ge=1)
    patience: int = Field(20, ge=1)


class CTRMF(MF):
    """MF whose score for a pair is ⟨e_u, e_i⟩ (no biases, as in CoRA's baseline)."""

    def pair_logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user(users) * self.item(items)).sum(-1)

    @torch.no_grad()
    def predict(self, data: CTRData, part: str) -> np.ndarray:
        p = data.part(part)
        dev = self.user.weight.device
        return self.pair_logits(torch.from_numpy(p.user).to(dev),
                                torch.from_numpy(p.item).to(dev)).cpu().numpy()

    def cf_input(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """x_ui = [e_u ; e_i], detached (the CF model is frozen)."""
        return torch.cat([self.user(users), self.item(items)], -1).detach()


def train_cf(data: CTRData, p: CFParams, seed: int, ctx: Any = None,
             cache_dir: Optional[Path] = None, device: Any = "cpu") -> CTRMF:
    """Train (or load from the cache) the BCE MF on the full train split."""
    key = hashlib.sha256(json.dumps({"split": data.split_id, "fp": data.fingerprint,
                                     "params": p.model_dump(), "seed": seed, "v": 1},
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / "ctr_cf" / f"{key}.pt"
    model = CTRMF(data.n_users, data.n_items, p.dim)
    if path is not None and path.exists() and ctx is None:
        stored = torch.load(path, map_location="cpu")
        model.load_state_dict(stored["state"])
        model.history = stored["history"]
        return model.to(device).eval()
    src = data.cf_train
    users = torch.from_numpy(src.user)
    items = torch.from_numpy(src.item)
    labels = torch.from_numpy(src.label)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CTRMF(data.n_users, data.n_items, p.dim).to(device)
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)

        def epoch(_e: int) -> float:
            order = torch.randperm(len(users), generator=g)
            total = 0.0
            for s in range(0, len(order), p.batch_size):
                b = order[s:s + p.batch_size]
                logits = model.pair_logits(users[b].to(device), items[b].to(device))
                loss = F.binary_cross_entropy_with_logits(logits, labels[b].to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            return total / len(order)

        model.history = fit_ctr(model, epoch, data, ctx if ctx is not None else silent_context(data),
                                p.epochs, p.patience)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"state": model.state_dict(), "history": model.history}, tmp)
        os.replace(tmp, path)
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model.eval()
