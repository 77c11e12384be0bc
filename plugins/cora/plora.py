"""Per-sample collaborative LoRA ("PLoRA", CoRA spec §2.4): a frozen ``nn.Linear`` plus
(α/r)·P(A_uiᵀ dropout(x)), where A_ui is generated for each sample from CF embeddings and
P is a trainable, zero-initialised up-projection per module.

peft cannot do this (its adapters are per model, not per sample), so the q/k/v/o
projections are wrapped here. The generated A_ui is read from a shared
:class:`IncrementContext` that the model sets just before each forward pass; with no A
set (``ctx.a is None``) the wrapper is exactly the frozen linear layer, which is how the
"increment switched off" perplexity is measured.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
import torch.nn as nn

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


class IncrementContext:
    """The current batch's generated low-rank factors A_ui, shape [B, H_in, r]."""

    def __init__(self) -> None:
        self.a: Optional[torch.Tensor] = None

    @contextmanager
    def use(self, a: Optional[torch.Tensor]) -> Iterator[None]:
        previous, self.a = self.a, a
        try:
            yield
        finally:
            self.a = previous


class PLoRALinear(nn.Module):
    """``base(x) + scale · P(Aᵀ dropout(x))`` with the batch's A from ``context``.

    The base layer is kept as it is (frozen, never written); P starts at zero, so before
    training the wrapped model computes exactly what the base model computes.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float,
                 context: IncrementContext) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.p = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.p.weight)
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        a = self.context.a
        if a is None:
            return y
        low = torch.bmm(self.dropout(x).reshape(x.shape[0], -1, x.shape[-1]), a)  # [B, T, r]
        return y + self.scale * self.p(low).reshape(y.shape)


def inject(model: nn.Module, rank: int, alpha: float, dropout: float,
           targets: Sequence[str] = TARGETS) -> tuple[IncrementContext, list[PLoRALinear]]:
    """Wrap every target projection of every decoder layer; all wrappers share one
    context, so one generated A_ui is used in every layer and module (as in the code)."""
    context = IncrementContext()
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                w = PLoRALinear(child, rank, alpha, dropout, context)
                setattr(module, child_name, w)
                wrapped.append(w)
    if not wrapped:
        raise ValueError(f"no {', '.join(targets)} linear layers found to wrap.")
    in_widths = {w.base.in_features for w in wrapped}
    if len(in_widths) != 1:
        raise ValueError(f"target layers have different input widths {sorted(in_widths)}; "
                         "one shared A_ui needs one width.")
    return context, wrapped
