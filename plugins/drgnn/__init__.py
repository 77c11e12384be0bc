"""DR-GNN (Wang et al., WWW 2024): distributionally robust LightGCN.

Why it sits next to CausalDiffRec: it is the OOD-robust graph recommender whose OOD data
CausalDiffRec reuses. DR-GNN reads LightGCN's propagation as a graph-smoothing
regulariser and applies KL-DRO to it: during training every edge (u, i) of the
normalised adjacency is reweighted by the worst-case distribution within a KL ball,

    w_ui ∝ exp(−cos(e_u, e_i) / (sqrt(d_u d_i) · alpha)),  normalised to mean 1 per user,

so poorly smoothed (atypical) edges count more; scoring uses the plain graph. The BPR
term carries a temperature ``tau`` (softplus((s⁻ − s⁺)/tau)). The paper's optional
similarity-based edge augmentation (``--aug_on``) is not implemented.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from harness.api import MethodSpec, PositiveFloat, PositiveInt, TrainResult
from harness.blocks.graph import LightGCN, mark_symmetric, normalized_adjacency, propagate
from harness.blocks.pairwise import PairwiseParams, bpr_loss, embedding_l2, train_pairwise
from harness.hookspecs import hookimpl


class DRGNNParams(PairwiseParams):
    n_layers: PositiveInt = 3
    alpha: PositiveFloat = 0.04  # KL-ball temperature: smaller = more adversarial edge weights
    tau: PositiveFloat = 1.0     # BPR temperature
    dro: bool = True     # False gives plain LightGCN (with tau): the DRO ablation


class DRGNN(LightGCN):
    """LightGCN whose training-time propagation uses DRO edge weights."""

    def __init__(self, *args, alpha: float = 0.04, tau: float = 1.0, dro: bool = True, **kw) -> None:
        super().__init__(*args, **kw)
        self.alpha, self.tau, self.dro = alpha, tau, dro
        idx = self.adj.indices()
        rows, cols = idx[0], idx[1]
        # every stored entry belongs to one (user, item) edge, in either direction
        self.edge_user = torch.where(rows < self.n_users, rows, cols)
        self.edge_item = torch.where(rows < self.n_users, cols, rows)
        deg = torch.zeros(self.n_users + self.n_items).index_add_(
            0, rows, torch.ones_like(rows, dtype=torch.float32))
        self.deg = deg.clamp(min=1)

    def edge_weights(self) -> torch.Tensor:
        """Worst-case (KL-DRO) weight per stored adjacency entry, mean 1 over a user's edges."""
        with torch.no_grad():
            emb = F.normalize(self.ego(), dim=1)
            u, i = self.edge_user, self.edge_item
            sim = (emb[u] * emb[i]).sum(-1) / torch.sqrt(self.deg[u] * self.deg[i])
            f = torch.exp(-sim / self.alpha)
            # E_f per user over its edges, each edge counted once (one stored direction)
            one_way = self.adj.indices()[0] < self.n_users
            per_user = torch.zeros(self.n_users + self.n_items).index_add_(0, u[one_way], f[one_way])
            return f / (per_user / self.deg)[u].clamp(min=1e-12)

    def layer_embeddings(self) -> list[torch.Tensor]:
        if not (self.training and self.dro):
            return super().layer_embeddings()
        adj = torch.sparse_coo_tensor(self.adj.indices(), self.adj.values() * self.edge_weights(),
                                      self.adj.shape, is_coalesced=True, check_invariants=False)
        # both stored directions of an edge get its one weight, so the result stays symmetric
        return propagate(mark_symmetric(adj), self.ego(), self.n_layers)

    def pairwise_loss(self, users, pos, neg):
        u_all, i_all = self.embeddings()
        u, p, n = u_all[users], i_all[pos], i_all[neg]
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        return (bpr_loss(pos_s / self.tau, neg_s / self.tau),
                embedding_l2(self.user(users), self.item(pos), self.item(neg)))


@hookimpl
def bench_register_methods():
    return [MethodSpec("drgnn", ("topk",),
                       "DR-GNN (Wang et al. 2024): LightGCN with KL-DRO edge reweighting",
                       params=DRGNNParams, version="1")]


@hookimpl
def bench_train(method: str, params: dict, dataset, ctx) -> Optional[DRGNN]:
    if method != "drgnn":
        return None
    p = DRGNNParams(**params)
    coo = dataset.train_matrix.tocoo()
    adj = normalized_adjacency(dataset.n_users, dataset.n_items, coo.row, coo.col, device=ctx.device)
    model = DRGNN(dataset.n_users, dataset.n_items, p.dim, p.n_layers, adj,
                  alpha=p.alpha, tau=p.tau, dro=p.dro).to(ctx.device)
    return TrainResult(model, train_pairwise(model, dataset, ctx, p))
