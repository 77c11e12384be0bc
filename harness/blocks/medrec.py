"""The medication-recommendation backbone every medrec arm shares, and its training loop.

A GAMENet-style visit encoder without the memory module ("GAMENet-lite", spec §4.2):
per-code embeddings are sum-pooled per visit, separately for diagnoses and procedures;
each feature's visit sequence runs through its own GRU; the two last states are
concatenated, ReLU -> Linear(2h -> d) gives the query, and a Linear head gives one logit
per drug (BCE-with-logits). Arms differ only in the code-embedding module plugged in
(``embed["conditions"]``, ``embed["procedures"]``): the flat table, the flat table with
an UNK for codes unseen in training, a learned leaf + ancestors sum, or HIER.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from ..api import Params, Rate
from ..training import fit, minibatch_epoch

FEATURES = ("conditions", "procedures")


class MedRecParams(Params):
    """Defaults from the released scripts (dim 128, Adam 1e-3, batch 32); the epoch cap
    is an upper bound, early stopping on the suite's validation metric ends training."""

    dim: int = Field(128, ge=1)
    hidden: int = Field(128, ge=1)
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: Rate = 1e-3
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(5, ge=1)
    eval_every: int = Field(1, ge=1)
    mask_padding: bool = Field(True, description="zero padded code slots before pooling; "
                               "False reproduces the released code, where a position "
                               "encoding's ReLU(b) leaks in from every pad")


@dataclass
class PartTensors:
    """One split part as padded tensors: code ids [N, T, C] per feature (0 = pad),
    visit counts [N], multi-hot labels [N, n_drugs]."""

    codes: dict[str, torch.Tensor]
    lengths: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        t = int(self.lengths[idx].max())
        out = {}
        for f, x in self.codes.items():
            xb = x[idx, :t]
            c = int((xb > 0).sum(-1).max()) or 1
            out[f] = xb[..., :c]
        return out, self.lengths[idx]


def encode_part(samples: Sequence[dict], info: Any) -> PartTensors:
    """Pad one part's samples into :class:`PartTensors` (codes ordered as in the data)."""
    n = len(samples)
    t_max = max((len(s["conditions"]) for s in samples), default=1)
    codes = {}
    for f in FEATURES:
        ids = info.code_ids(f)
        c_max = max((len(v) for s in samples for v in s[f]), default=1) or 1
        x = np.zeros((n, t_max, c_max), dtype=np.int64)
        for i, s in enumerate(samples):
            for t, visit in enumerate(s[f]):
                x[i, t, :len(visit)] = [ids[c] for c in visit]
        codes[f] = torch.from_numpy(x)
    drug_id = {d: j for j, d in enumerate(info.drugs)}
    y = torch.zeros(n, len(info.drugs))
    for i, s in enumerate(samples):
        y[i, [drug_id[d] for d in s["drugs"] if d in drug_id]] = 1.0
    lengths = torch.tensor([len(s["conditions"]) for s in samples], dtype=torch.long)
    return PartTensors(codes, lengths, y)


def part_tensors(data: Any, part: str) -> PartTensors:
    """Encoded once per dataset object and part (the scorer and training share it)."""
    cache = data.extra.setdefault("_tensors", {})
    if part not in cache:
        cache[part] = encode_part(data.part(part), data.extra["medrec"])
    return cache[part]


# --- code-embedding modules of the baselines -------------------------------------------------

class FlatEmbedding(nn.Module):
    """A learned table over the vocabulary (PyHealth). ``unseen_to_unk``: codes not seen
    in training share one zero UNK row instead of a never-trained random row."""

    def __init__(self, vocab: Sequence[str], dim: int, train_codes: set | None = None) -> None:
        super().__init__()
        self.table = nn.Embedding(len(vocab) + 1, dim, padding_idx=0)
        remap = torch.arange(len(vocab) + 1)
        if train_codes is not None:
            for i, c in enumerate(vocab):
                if c not in train_codes:
                    remap[i + 1] = 0
        self.register_buffer("remap", remap, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(self.remap[ids])


class AncestorEmbedding(nn.Module):
    """``flat+anc``: a learned vector per code plus one per ancestor (category, block,
    ... ``levels`` of them), summed: the cheap "use the hierarchy" reference (GRAM-lite
    without attention). Codes outside the tree get their own vector only."""

    def __init__(self, vocab: Sequence[str], tree: Any, dim: int, levels: int = 2) -> None:
        super().__init__()
        nodes: dict[str, int] = {}
        rows = np.zeros((len(vocab) + 1, levels + 1), dtype=np.int64)
        for i, code in enumerate(vocab):
            chain = [code] + (tree.ancestors(code)[:levels] if code in tree else [])
            for k, node in enumerate(chain):
                if node == "root":
                    break
                rows[i + 1, k] = nodes.setdefault(node, len(nodes) + 1)
        self.table = nn.Embedding(len(nodes) + 1, dim, padding_idx=0)
        self.register_buffer("rows", torch.from_numpy(rows), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(self.rows[ids]).sum(-2)


# --- the backbone -----------------------------------------------------------------------------

class VisitEncoderRecommender(nn.Module):
    """GAMENet-lite over pluggable code embeddings (see the module docstring)."""

    task = "medrec"

    def __init__(self, embed: dict[str, nn.Module], n_drugs: int, dim: int = 128,
                 hidden: int = 128, mask_padding: bool = True) -> None:
        super().__init__()
        self.embed = nn.ModuleDict(embed)
        self.gru = nn.ModuleDict({f: nn.GRU(dim, hidden, batch_first=True) for f in FEATURES})
        self.query = nn.Linear(2 * hidden, dim)
        self.head = nn.Linear(dim, n_drugs)
        self.mask_padding = mask_padding

    def forward(self, codes: dict[str, torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
        last = []
        rows = torch.arange(len(lengths), device=lengths.device)
        for f in FEATURES:
            ids = codes[f]
            e = self.embed[f](ids)  # [B, T, C, d]
            if self.mask_padding:
                e = e * (ids > 0).unsqueeze(-1).to(e.dtype)
            out, _ = self.gru[f](e.sum(2))  # [B, T, h]
            last.append(out[rows, lengths - 1])
        q = self.query(F.relu(torch.cat(last, -1)))
        return self.head(q)

    @torch.no_grad()
    def predict_proba(self, part: PartTensors, chunk: int = 512) -> np.ndarray:
        self.eval()
        device = next(self.parameters()).device
        out = []
        for s in range(0, len(part), chunk):
            idx = torch.arange(s, min(s + chunk, len(part)))
            codes, lengths = part.batch(idx)
            logits = self({f: x.to(device) for f, x in codes.items()}, lengths.to(device))
            out.append(torch.sigmoid(logits.double()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.head.out_features))


def train_medrec(model: VisitEncoderRecommender, data: Any, ctx: Any, p: MedRecParams) -> dict:
    """Adam on BCE-with-logits over shuffled mini-batches of training samples, with
    validation early stopping (:func:`harness.training.fit`)."""
    train = part_tensors(data, "train")
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(trainable, lr=p.lr, weight_decay=p.weight_decay)
    order_rng = ctx.rng("train.order")
    device = next(model.parameters()).device

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        codes, lengths = train.batch(idx)
        logits = model({f: x.to(device) for f, x in codes.items()}, lengths.to(device))
        return F.binary_cross_entropy_with_logits(logits, train.labels[idx].to(device))

    def epoch(_: int) -> float:
        return minibatch_epoch(len(train), p.batch_size, order_rng, opt, batch_loss)

    return fit(model, epoch, data, ctx, epochs=p.epochs, eval_every=p.eval_every,
               patience=p.patience)


def cached_tensor(root: Path | str, kind: str, inputs: Any,
                  build: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A tensor computed once per ``inputs`` and kept in the harness cache (content
    key, atomic publish, SHA-256 verified on read, loaded with ``weights_only``): e.g.
    HIER's pre-trained relation table, shared by every arm of a seed."""
    from ..cache import get_or_build

    def write(folder: Path) -> torch.Tensor:
        value = build()
        torch.save(value.detach().cpu(), folder / "tensor.pt")
        return value

    def read(folder: Path) -> torch.Tensor:
        return torch.load(folder / "tensor.pt", weights_only=True)

    return get_or_build(root, kind, inputs, write, read)[0]
