"""DePT's decomposed prompt and EPT's prompt fusion and multi-space projection.

DePT (Shi & Lipani, ICLR 2024; official code ``peft/tuners/prompt_tuning_lora.py``):
a short soft prompt P_s (m x d) is prepended to the input embeddings, and the frozen
input embeddings X (s x d, s = maximum input length) are updated positionally by a
low-rank product: X' = X + (alpha / sqrt(r)) * A B with A (s x r), B (r x d), B = 0 at
init (so a fresh DePT is exactly prompt tuning with P_s).

EPT (Lan et al., AAAI 2025) adds two modules on top. The paper's code is not public, so
their shapes are reconstructions (spec §4.2, marked RECON) and every uncertain choice is
a parameter:

* prompt fusion: P_f = P_s + Attn(Q = P_s W_q, K = S W_k, V = S) with knowledge
  S = [B ; P_s] (``fusion_source="B"``) or [(AB)_{1:m} ; P_s] (``"AB"``); W_q, W_k are
  d x k (a low-rank bilinear score keeps the module small); optional LayerNorm;
* multi-space projection: N projectors f_k(P) = P U_k V_k (U_k: d x d_k, V_k: d_k x d,
  V_k = 0 at init) mixed by a softmax gate g = softmax(W_g meanpool(P_f) + b_g) (one gate
  per prompt, or per prompt token with ``gate="token"``); P_final = P_f + sum_k g_k f_k(P_f).
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch import nn


class PromptFusion(nn.Module):
    """One attention head from the short prompt to the knowledge rows S."""

    def __init__(self, dim: int, k: int, norm: bool = False) -> None:
        super().__init__()
        self.w_q = nn.Parameter(torch.empty(dim, k))
        self.w_k = nn.Parameter(torch.empty(dim, k))
        nn.init.normal_(self.w_q, std=1.0 / math.sqrt(dim))
        nn.init.normal_(self.w_k, std=1.0 / math.sqrt(dim))
        self.k = k
        self.norm = nn.LayerNorm(dim, elementwise_affine=False) if norm else None

    def forward(self, prompt: torch.Tensor, knowledge: torch.Tensor) -> torch.Tensor:
        scores = (prompt @ self.w_q) @ (knowledge @ self.w_k).T / math.sqrt(self.k)
        fused = prompt + torch.softmax(scores, -1) @ knowledge
        return self.norm(fused) if self.norm is not None else fused


class MultiSpaceProjection(nn.Module):
    """N low-rank subspace projectors combined by a softmax gate."""

    def __init__(self, dim: int, n_spaces: int, space_dim: int,
                 gate: Literal["prompt", "token"] = "prompt") -> None:
        super().__init__()
        self.u = nn.Parameter(torch.empty(n_spaces, dim, space_dim))
        self.v = nn.Parameter(torch.zeros(n_spaces, space_dim, dim))
        nn.init.kaiming_uniform_(self.u, a=math.sqrt(5))
        self.gate = nn.Linear(dim, n_spaces)
        self.gate_kind = gate

    def gate_weights(self, prompt: torch.Tensor) -> torch.Tensor:
        """[N] (one gate for the prompt) or [m, N] (one per prompt token); rows sum to one."""
        source = prompt.mean(0) if self.gate_kind == "prompt" else prompt
        return torch.softmax(self.gate(source), -1)

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        proj = torch.einsum("md,ndk,nke->nme", prompt, self.u, self.v)  # [N, m, d]
        g = self.gate_weights(prompt)
        if g.dim() == 1:
            return torch.einsum("n,nme->me", g, proj)
        return torch.einsum("mn,nme->me", g, proj)


class DecomposedPrompt(nn.Module):
    """DePT's (P_s, A, B), optionally with EPT's fusion and multi-space projection.

    ``rank = 0`` drops the low-rank update (then it is plain prompt tuning with P_s).
    """

    def __init__(self, dim: int, prompt_length: int, max_length: int, rank: int,
                 alpha: float = 8.0, fusion_dim: Optional[int] = None, fusion_norm: bool = False,
                 fusion_source: Literal["B", "AB"] = "B", n_spaces: Optional[int] = None,
                 space_dim: int = 1, gate: Literal["prompt", "token"] = "prompt",
                 init: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.max_length, self.rank = max_length, rank
        self.prompt = nn.Parameter(init.clone() if init is not None
                                   else torch.randn(prompt_length, dim) * 0.02)
        if rank > 0:
            self.lora_a = nn.Parameter(torch.empty(rank, max_length))  # A^T: [r, s]
            self.lora_b = nn.Parameter(torch.zeros(rank, dim))
            nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.scale = alpha / math.sqrt(rank)
        self.fusion = PromptFusion(dim, fusion_dim, fusion_norm) if fusion_dim else None
        self.fusion_source = fusion_source
        self.projection = MultiSpaceProjection(dim, n_spaces, space_dim, gate) if n_spaces else None

    def prompt_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(the soft prompt, everything else): DePT trains them with two learning rates."""
        rest = [p for n, p in self.named_parameters() if n != "prompt"]
        return [self.prompt], rest

    def update(self, length: int) -> torch.Tensor:
        """(alpha/sqrt(r)) (A B)[:length]: added to input positions 0..length-1."""
        return self.scale * (self.lora_a[:, :length].T @ self.lora_b)

    def final_prompt(self) -> torch.Tensor:
        p = self.prompt
        if self.fusion is not None:
            if self.rank > 0 and self.fusion_source == "B":
                knowledge = torch.cat([self.lora_b, p])
            elif self.rank > 0:
                knowledge = torch.cat([self.update(min(self.max_length, len(p))), p])
            else:
                knowledge = p
            p = self.fusion(p, knowledge)
        if self.projection is not None:
            p = p + self.projection(p)
        return p

    def forward(self, embeds: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen token embeddings [B, L, d] -> (prompt + updated embeddings, mask)."""
        length = embeds.shape[1]
        if length > self.max_length:
            raise ValueError(f"input of {length} tokens exceeds max_length {self.max_length}")
        if self.rank > 0:
            embeds = embeds + self.update(length).to(embeds.dtype)
        p = self.final_prompt().to(embeds.dtype)
        b = embeds.shape[0]
        out = torch.cat([p.unsqueeze(0).expand(b, -1, -1), embeds], 1)
        mask = torch.cat([attention_mask.new_ones(b, p.shape[0]), attention_mask], 1)
        return out, mask
