"""Stage 3 of HNLMRec: semantic alignment and CF training (spec §1.2).

An adapter maps each pair's semantic negative from the LLM's space into the CF space
(trained by default to align item text embeddings with the items' CF embeddings;
``adapter_objective: loss`` lets the ranking loss train it instead, which degenerates);
the sampled negative's embedding is mixed with it, ẽ_j = α·h_ui + (1−α)·e_j, and the loss
is hinge(m) (or BPR) on (e_u·e_i, e_u·ẽ_j) + w·InfoNCE(e_u; e_i vs h_ui) + L2.

Paper intent vs released code: the code never gives the adapter to the optimiser (it
stays random), uses α = 1e-4 and a ReLU on the adapter output; ``official_code`` does
that, the default trains the adapter. L2 follows the harness's convention (squared norm
of the batch's ego embeddings / 2B) rather than SELFRec's un-squared norm.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.blocks.pairwise import embedding_l2, ranking_loss

from .params import HNLMRecParams
from .semantic import SemanticNegatives


class Adapter(nn.Sequential):
    """LLM space → CF space (the code's 3-layer MLP, scaled down: D → hidden → d)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, final_relu: bool) -> None:
        layers = [nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out)]
        super().__init__(*layers, *([nn.ReLU()] if final_relu else []))


class HNLMRecModel(nn.Module):
    """A CF backbone (LightGCN or MF) trained with semantically mixed negatives; scoring
    and the embeddings samplers read (DNS) are the backbone's."""

    def __init__(self, backbone: nn.Module, semantic: SemanticNegatives, p: HNLMRecParams) -> None:
        super().__init__()
        self.backbone = backbone
        self.semantic = semantic  # not a module: lookups only
        self.register_buffer("sem_vectors", semantic.vectors.float())
        self.register_buffer("item_text_vectors", semantic.item_vectors.float())
        self.objective, self.align_weight = p.adapter_objective, p.align_weight
        self.adapter = Adapter(semantic.vectors.shape[1], p.adapter_hidden, p.dim,
                               final_relu=p.official_code)
        self.adapter.requires_grad_(p.adapter_is_trainable)
        self.alpha, self.loss_kind, self.margin = p.mix_alpha, p.loss, p.margin
        self.cl_weight, self.cl_tau = p.cl_weight, p.cl_tau
        self.n_users, self.n_items = backbone.n_users, backbone.n_items
        if hasattr(backbone, "layer_embeddings"):
            self.layer_embeddings = backbone.layer_embeddings

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone.embeddings()

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.backbone.score(users)

    def train(self, mode: bool = True) -> "HNLMRecModel":
        super().train(mode)
        self.backbone.train(mode)  # LightGCN drops its propagation cache here
        return self

    def load_state_dict(self, *args, **kwargs):
        out = super().load_state_dict(*args, **kwargs)
        if hasattr(self.backbone, "drop_cache"):
            self.backbone.drop_cache()  # restored weights invalidate LightGCN's propagation
        return out

    def semantic_negatives(self, users: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """h_ui: each pair's semantic negative mapped into CF space, ``[B, d]``."""
        slot = self.semantic.lookup(users, pos, self.n_items).to(self.sem_vectors.device)
        return self.adapter(self.sem_vectors[slot])

    @torch.no_grad()
    def hardness(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, float]:
        """How hard the semantic negative is for the trained model: its score e_u·h
        against the positive's and the sampled negative's. A trainable adapter is pushed
        by the loss towards *easy* h (low e_u·h), which this makes visible."""
        u_all, i_all = self.backbone.embeddings()
        eu = u_all[users]
        s_h = (eu * self.semantic_negatives(users, pos)).sum(-1)
        s_i, s_j = (eu * i_all[pos]).sum(-1), (eu * i_all[neg]).sum(-1)
        return {"semantic_score_above_sampled": float((s_h > s_j).float().mean()),
                "semantic_score_above_positive": float((s_h > s_i).float().mean()),
                "semantic_cos_user": float(F.cosine_similarity(
                    eu, self.semantic_negatives(users, pos), dim=-1).mean())}

    def pairwise_loss(self, users, pos, neg):
        u_all, i_all = self.backbone.embeddings()
        eu, ei, ej = u_all[users], i_all[pos], i_all[neg]
        h = self.semantic_negatives(users, pos)
        align = torch.zeros((), device=eu.device)
        if self.objective == "align":
            # semantic alignment on real items: adapter(text of j) ≈ e_j (CF side fixed);
            # the ranking loss then treats h as data, so it cannot make h easy
            items = torch.cat([pos, neg])
            if any(q.requires_grad for q in self.adapter.parameters()):
                align = F.mse_loss(self.adapter(self.item_text_vectors[items]),
                                   i_all[items].detach())
            h = h.detach()
        mixed = self.alpha * h + (1 - self.alpha) * ej
        pos_s, neg_s = (eu * ei).sum(-1), (eu * mixed).sum(-1)
        main = ranking_loss(pos_s, neg_s, self.loss_kind, self.margin)
        # InfoNCE with one semantic negative: −log e^{a}/(e^{a}+e^{b}) = softplus(b − a)
        a = F.cosine_similarity(eu, ei, dim=-1) / self.cl_tau
        b = F.cosine_similarity(eu, h, dim=-1) / self.cl_tau
        cl = F.softplus(b - a).mean()
        reg = embedding_l2(self.backbone.user(users), self.backbone.item(pos), self.backbone.item(neg))
        return main + self.cl_weight * cl + self.align_weight * align, reg
