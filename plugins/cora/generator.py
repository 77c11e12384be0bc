"""The collaborative query generator (CoRA spec §2.4): frozen CF user ⊕ item embeddings
→ a unit-norm low-rank factor A_ui ∈ R^{H×r} per sample.

A BLIP-2 Q-Former (transformers' ``Blip2QFormerModel``, cross-attention in every layer)
lets ``num_queries`` learnable query tokens attend to x_ui = [e_u; e_i] (a length-1
"encoder sequence"); a linear head maps each query to H·r values; the queries are
averaged, the whole H·r vector is L2-normalised and reshaped to (H, r).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CollaborativeGenerator(nn.Module):
    def __init__(self, cf_dim: int, hidden: int, rank: int, num_queries: int = 4,
                 layers: int = 2, heads: int = 4, intermediate: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        width = 2 * cf_dim
        conf = Blip2QFormerConfig(hidden_size=width, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=intermediate,
                                  hidden_dropout_prob=dropout,
                                  attention_probs_dropout_prob=dropout,
                                  cross_attention_frequency=1, encoder_hidden_size=width)
        self.qformer = Blip2QFormerModel(conf)
        self.queries = nn.Parameter(torch.randn(1, num_queries, width) * 0.02)
        self.head = nn.Linear(width, hidden * rank)  # default init: Kaiming-uniform, a=√5
        self.hidden, self.rank = hidden, rank

    def forward(self, x_ui: torch.Tensor) -> torch.Tensor:
        """``x_ui`` [B, 2d] → A [B, H, r] with ‖A‖_F = 1 per sample."""
        enc = x_ui.unsqueeze(1)
        q = self.queries.expand(x_ui.shape[0], -1, -1)
        out = self.qformer(query_embeds=q, encoder_hidden_states=enc).last_hidden_state
        flat = self.head(out).mean(1)
        flat = F.normalize(flat, dim=-1)
        return flat.view(-1, self.hidden, self.rank)
