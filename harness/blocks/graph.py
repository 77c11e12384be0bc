"""Graph propagation on the user-item bipartite graph (LightGCN and everything built on it:
LSGRec, CausalDiffRec, HNLMRec's backbone, DRO variants).

Nodes are users 0..U-1 followed by items U..U+I-1.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.weak import WeakIdKeyDictionary

#: symmetric adjacencies (keyed by the COO tensor itself) -> their CSR copy; see mark_symmetric
_SYMMETRIC_CSR = WeakIdKeyDictionary()


def bipartite_adjacency(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                        weights: Optional[np.ndarray] = None) -> sp.csr_matrix:
    """Symmetric (U+I)x(U+I) adjacency with the user-item block and its transpose."""
    w = np.ones(len(users), dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
    r = sp.csr_matrix((w, (users, items)), shape=(n_users, n_items))
    return sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)


def sym_normalize(adj: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2, with isolated nodes left at zero (no division by zero)."""
    deg = np.asarray(abs(adj).sum(axis=1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float32)
    nz = deg > 0
    inv[nz] = deg[nz] ** -0.5
    d = sp.diags(inv)
    return (d @ adj @ d).tocsr().astype(np.float32)


def to_torch_sparse(m: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    coo = m.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data.astype(np.float32)),
                                   coo.shape, device=device, check_invariants=False).coalesce()


def normalized_adjacency(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                         weights: Optional[np.ndarray] = None,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """LightGCN's normalised adjacency as a coalesced torch sparse tensor, marked symmetric
    (D^-1/2 A D^-1/2 of an undirected graph) so :func:`propagate` takes the fast path."""
    return mark_symmetric(to_torch_sparse(
        sym_normalize(bipartite_adjacency(n_users, n_items, users, items, weights)), device))


def mark_symmetric(adj: torch.Tensor) -> torch.Tensor:
    """Declare ``adj`` (a square sparse COO tensor, symmetric by construction) symmetric.

    Why: ``torch.sparse.mm`` on COO computes its backward through a transposed, re-coalesced
    copy of the matrix on every call, which dominated LightGCN's training step. For a
    symmetric Â the gradient of Â·X is Â·G, so :func:`propagate` multiplies with one cached
    CSR copy in both directions (about 3x faster per step on CPU, and row-sequential sums,
    so deterministic). The caller vouches for symmetry; the values are not checked here
    (``tests/test_graph_block.py`` checks the builders). Returns ``adj`` itself.
    """
    if adj.layout != torch.sparse_coo or adj.shape[0] != adj.shape[1]:
        raise ValueError("mark_symmetric expects a square sparse COO tensor.")
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we want
        warnings.simplefilter("ignore", UserWarning)
        _SYMMETRIC_CSR[adj] = adj.detach().coalesce().to_sparse_csr()
    return adj


class _SymmetricSpMM(torch.autograd.Function):
    """Â·X with backward Â·G (Â symmetric, constant): the same CSR product both ways."""

    @staticmethod
    def forward(ctx, csr: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.csr = csr
        return csr @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, ctx.csr @ grad


def spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Â·X: the symmetric CSR fast path when ``adj`` was marked (and carries no gradient),
    ``torch.sparse.mm`` otherwise."""
    csr = _SYMMETRIC_CSR.get(adj)
    if csr is not None and not adj.requires_grad:
        return _SymmetricSpMM.apply(csr, x)
    return torch.sparse.mm(adj, x)


def propagate(adj: torch.Tensor, ego: torch.Tensor, n_layers: int) -> list[torch.Tensor]:
    """[E⁰, E¹, ..., Eᴸ] with Eˡ⁺¹ = Â Eˡ (no weights, no non-linearity)."""
    layers = [ego]
    for _ in range(n_layers):
        layers.append(spmm(adj, layers[-1]))
    return layers


def mean_readout(layers: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(layers, dim=0).mean(dim=0)


class _SymmetricMeanPropagation(torch.autograd.Function):
    """mean(E⁰..Eᴸ) with Eˡ⁺¹ = Â Eˡ (Â symmetric, constant) in one autograd node.

    Forward sums the layers as they are made, in layer order, then divides by L+1;
    backward is Horner's rule: every layer receives S = G/(L+1) from the mean, and layer
    l also Â·(gradient of layer l+1), so the gradient of E⁰ is S + Â(S + Â(S + ...)): the
    same L products and two-term sums autograd computes through ``propagate`` +
    ``mean_readout``, without the [L+1, N, d] stack, its mean and their backward copies.
    Gradients are bit-identical to that path; so are the values whenever torch's stacked
    sum also adds the rows in order (widths that are multiples of 8, or up to 3 layers:
    every shipped suite); otherwise they differ in the last bits
    (``tests/test_pairwise_speed.py``).
    """

    @staticmethod
    def forward(ctx, csr: torch.Tensor, ego: torch.Tensor, n_layers: int) -> torch.Tensor:  # type: ignore[override]
        ctx.csr, ctx.count = csr, n_layers + 1
        layer, total = ego, ego
        for _ in range(n_layers):
            layer = csr @ layer
            total = total + layer
        return total / ctx.count

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        share = grad / ctx.count
        layer_grad = share
        for _ in range(ctx.count - 1):
            layer_grad = share + ctx.csr @ layer_grad
        return None, layer_grad, None


def propagate_mean(adj: torch.Tensor, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """``mean_readout(propagate(adj, ego, n_layers))``, in one fused step when ``adj`` was
    marked symmetric (:func:`mark_symmetric`) and carries no gradient: same values and
    gradients, less memory traffic."""
    csr = _SYMMETRIC_CSR.get(adj)
    if csr is not None and not adj.requires_grad:
        return _SymmetricMeanPropagation.apply(csr, ego, n_layers)
    return mean_readout(propagate(adj, ego, n_layers))


class LightGCN(torch.nn.Module):
    """LightGCN (He et al. 2020): ego embeddings propagated over Â, layer-mean readout,
    BPR with L2 on the ego embeddings of the batch.

    Other graph methods subclass or wrap it (signed, causal, DRO variants) instead of
    re-implementing propagation.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, n_layers: int, adj: torch.Tensor,
                 loss: str = "bpr", margin: float = 0.3) -> None:
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.loss_kind, self.margin = loss, margin  # pairwise ranking loss (blocks.pairwise)
        self.user = torch.nn.Embedding(n_users, dim)
        self.item = torch.nn.Embedding(n_items, dim)
        torch.nn.init.xavier_uniform_(self.user.weight)
        torch.nn.init.xavier_uniform_(self.item.weight)
        self.adj = adj
        self._cache: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    @classmethod
    def from_dataset(cls, dataset, dim: int = 64, n_layers: int = 3, device="cpu",
                     **kwargs) -> "LightGCN":
        coo = dataset.train_matrix.tocoo()
        adj = normalized_adjacency(dataset.n_users, dataset.n_items, coo.row, coo.col, device=device)
        return cls(dataset.n_users, dataset.n_items, dim, n_layers, adj, **kwargs)

    def ego(self) -> torch.Tensor:
        return torch.cat([self.user.weight, self.item.weight], dim=0)

    def layer_embeddings(self) -> list[torch.Tensor]:
        """[E⁰..Eᴸ] over users+items (MixGCF's hop mixing needs every layer)."""
        return propagate(self.adj, self.ego(), self.n_layers)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training and self._cache is not None:
            return self._cache
        if type(self).layer_embeddings is LightGCN.layer_embeddings:
            final = propagate_mean(self.adj, self.ego(), self.n_layers)
        else:  # a subclass propagates its own way (DR-GNN's reweighted graph)
            final = mean_readout(self.layer_embeddings())
        out = (final[: self.n_users], final[self.n_users:])
        self._cache = None if self.training else out
        return out

    def drop_cache(self) -> None:
        """Forget the propagated embeddings (call after changing the weights from outside,
        e.g. loading them into a model that wraps this one)."""
        self._cache = None

    def train(self, mode: bool = True) -> "LightGCN":
        self._cache = None  # weights may change: recompute propagation after training
        return super().train(mode)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self.embeddings()
        return u[users] @ i.T

    def load_state_dict(self, *args, **kwargs):
        self._cache = None  # restored weights (best epoch) invalidate the propagation cache
        return super().load_state_dict(*args, **kwargs)

    def pairwise_loss(self, users, pos, neg, with_reg: bool = True):
        """(ranking loss, L2 of the batch's ego embeddings; ``None`` when ``with_reg`` is
        off). ``neg`` is item ids ``[B]`` / ``[B, n]``, or MixGCF's
        :class:`~harness.blocks.negatives.MixedNegatives`."""
        from .negatives import MixedNegatives
        from .pairwise import embedding_l2, gather_rows, ranking_loss

        if isinstance(neg, MixedNegatives):
            return self._mixed_pairwise_loss(users, pos, neg)
        u_all, i_all = self.embeddings()
        u, p, n = gather_rows(u_all, users), gather_rows(i_all, pos), gather_rows(i_all, neg)
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        if not with_reg:
            return ranking_loss(pos_s, neg_s, self.loss_kind, self.margin), None
        return (ranking_loss(pos_s, neg_s, self.loss_kind, self.margin),
                embedding_l2(gather_rows(self.user.weight, users),
                             gather_rows(self.item.weight, pos), gather_rows(self.item.weight, neg)))

    def _mixed_pairwise_loss(self, users, pos, neg):
        """The ranking loss against MixGCF's synthetic negatives: they are rebuilt from this
        step's layer embeddings, so the gradient reaches the positive and the candidates."""
        from .pairwise import embedding_l2, gather_rows, ranking_loss

        layers = self.layer_embeddings()
        final = mean_readout(layers)
        u, p = final[users], final[self.n_users + pos]
        hops = neg.hops([layer[self.n_users:] for layer in layers])   # [B, n, H, d]
        n = hops.mean(dim=2)
        neg_s = (u.unsqueeze(1) * n).sum(-1)
        if neg_s.shape[1] == 1:
            neg_s = neg_s[:, 0]
        reg = embedding_l2(gather_rows(self.user.weight, users), gather_rows(self.item.weight, pos),
                           hops[:, :, 0, :].reshape(len(users), -1))
        return ranking_loss((u * p).sum(-1), neg_s, self.loss_kind, self.margin), reg


def signed_adjacency(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                     like: np.ndarray, device: torch.device | str = "cpu"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(Â⁺, Â⁻): each sign's subgraph normalised on its own, D₊^-1/2 A⁺ D₊^-1/2 and
    D₋^-1/2 A⁻ D₋^-1/2 with degrees counted within that sign (signed GCNs: LSGRec, SiReN).

    ``like`` is a boolean mask over the (user, item) events: True for positive links.
    """
    like = np.asarray(like, dtype=bool)
    users, items = np.asarray(users), np.asarray(items)
    return (normalized_adjacency(n_users, n_items, users[like], items[like], device=device),
            normalized_adjacency(n_users, n_items, users[~like], items[~like], device=device))
