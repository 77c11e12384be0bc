"""HIER's code embedding e(c) = r(c) + p(c) (spec §1.4-1.5).

* r: the pre-trained relation embedding (``relation.py``), frozen by default
  (``nn.Embedding.from_pretrained`` in the release); ``relation="finetune"`` trains it,
  ``relation="none"`` drops it. Pad and codes without a tree node get zero rows.
* p: the code string written into 8 character slots (ICD-9 E codes from slot 0, all
  other codes from slot 1, so the category digits line up), one-hot per slot with the
  symbols fitted on the feature's vocabulary, a frozen 0/1 matrix; p(c) = ReLU(W o_c + b)
  is trained. Pads have all-zero rows (their ReLU(b) is masked by the backbone unless
  ``mask_padding: false``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SLOTS = 8


def code_slots(code: str, kind: str, code_faithful_e_rule: bool = False) -> list[Optional[str]]:
    """The code's characters in 8 slots. The E-rule (start at slot 0) applies to ICD-9
    diagnosis E codes only; ``code_faithful_e_rule`` applies it to every code starting
    with "E", as the released code does (which mis-slots ICD-10 chapter-E codes)."""
    e_rule = code.startswith("E") and (kind == "icd9cm" or code_faithful_e_rule)
    start = 0 if e_rule else 1
    slots: list[Optional[str]] = [None] * SLOTS
    for k, ch in enumerate(code[:SLOTS - start]):
        slots[start + k] = ch
    return slots


def slot_onehot(vocab: Sequence[str], kind: str, code_faithful_e_rule: bool = False
                ) -> torch.Tensor:
    """[len(vocab) + 1, F] 0/1 matrix (row 0 = pad, all zeros); per slot one column per
    symbol seen there in the vocabulary (the blank included), so every code has exactly
    one active entry per slot."""
    slotted = [code_slots(c, kind, code_faithful_e_rule) for c in vocab]
    symbols = [sorted({s[k] or "" for s in slotted}) for k in range(SLOTS)]
    offsets = np.cumsum([0] + [len(s) for s in symbols])
    col = [{sym: offsets[k] + j for j, sym in enumerate(symbols[k])} for k in range(SLOTS)]
    out = torch.zeros(len(vocab) + 1, int(offsets[-1]))
    for i, s in enumerate(slotted):
        for k in range(SLOTS):
            out[i + 1, col[k][s[k] or ""]] = 1.0
    return out


class HierEmbedding(nn.Module):
    def __init__(self, vocab: Sequence[str], node_index: dict[str, int], z: torch.Tensor,
                 kind: str, dim: int, relation: str = "frozen", position: bool = True,
                 code_faithful_e_rule: bool = False) -> None:
        super().__init__()
        if relation not in ("frozen", "finetune", "none"):
            raise ValueError(f"relation must be frozen, finetune or none, got {relation!r}")
        if relation == "none" and not position:
            raise ValueError("relation 'none' and position false leave no embedding")
        self.relation, self.position = relation, position
        if relation != "none":
            rel = torch.zeros(len(vocab) + 1, z.shape[1])
            for i, c in enumerate(vocab):
                if c in node_index:
                    rel[i + 1] = z[node_index[c]]
            if z.shape[1] != dim:
                raise ValueError(f"relation dim {z.shape[1]} != model dim {dim}")
            # frozen: nn.Embedding.from_pretrained(freeze=True), as the release
            self.rel = nn.Embedding.from_pretrained(rel, freeze=(relation == "frozen"),
                                                    padding_idx=0)
        if position:
            self.register_buffer("onehot", slot_onehot(vocab, kind, code_faithful_e_rule),
                                 persistent=False)
            self.proj = nn.Linear(self.onehot.shape[1], dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = 0
        if self.relation != "none":
            out = self.rel(ids)
        if self.position:
            out = out + F.relu(self.proj(self.onehot[ids]))
        return out
