"""Stage 1 of CoRA (spec §2.3): a matrix-factorisation CF model trained on the labelled
train pairs with BCE, early-stopped on validation AUC, then frozen.

The same model is the ``ctr_mf`` arm of the leaderboard and the source of the frozen
(user, item) embeddings that CoRA's generator and CoLLM's soft tokens read. It is
trained inside a forked RNG seeded by the cell seed, so the ``ctr_mf`` cell and a CoRA
cell with the same seed get the same CF model, which is cached by content hash.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from harness.api import NonNegativeFloat, Params, PositiveInt, Rate, get_or_build
from harness.blocks.mf import MF
from harness.tasks.ctr import CTRData, fit_ctr, silent_context


class CFParams(Params):
    dim: PositiveInt = 64
    lr: Rate = 1e-3
    weight_decay: NonNegativeFloat = 1e-4
    batch_size: PositiveInt = 1024
    epochs: PositiveInt = 300
    patience: PositiveInt = 20


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
    """The BCE MF on the full train split. With ``ctx`` (the ``ctr_mf`` arm) it trains
    and logs its validation curve; without, it is CoRA's/CoLLM's frozen stage-1 model,
    trained silently or read from the cache (same seed and params: same weights)."""
    if ctx is not None or cache_dir is None:
        return _fit_cf(data, p, seed, ctx, device)
    inputs = {"split": data.split_id, "fingerprint": data.fingerprint,
              "params": p.model_dump(), "seed": seed, "v": 1}

    def build(folder: Path) -> CTRMF:
        model = _fit_cf(data, p, seed, None, device)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, folder / "mf.pt")
        (folder / "history.json").write_text(json.dumps(model.history))
        return model

    def load(folder: Path) -> CTRMF:
        model = CTRMF(data.n_users, data.n_items, p.dim)
        model.load_state_dict(torch.load(folder / "mf.pt", map_location="cpu", weights_only=True))
        model.history = json.loads((folder / "history.json").read_text())
        return _frozen(model.to(device))

    model, _, _ = get_or_build(cache_dir, "ctr_cf", inputs, build, load)
    return model


def _frozen(model: CTRMF) -> CTRMF:
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model.eval()


def _fit_cf(data: CTRData, p: CFParams, seed: int, ctx: Any, device: Any) -> CTRMF:
    """Adam on BCE over shuffled mini-batches of the full train split, early-stopped on
    validation AUC, inside an RNG forked and seeded by ``seed``."""
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
    return _frozen(model)
