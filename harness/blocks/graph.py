"""Graph propagation on the user-item bipartite graph (LightGCN and everything built on it:
LSGRec, CausalDiffRec, HNLMRec's backbone, DRO variants).

Nodes are users 0..U-1 followed by items U..U+I-1.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch


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
    """LightGCN's normalised adjacency as a coalesced torch sparse tensor."""
    return to_torch_sparse(sym_normalize(bipartite_adjacency(n_users, n_items, users, items, weights)),
                           device)


def propagate(adj: torch.Tensor, ego: torch.Tensor, n_layers: int) -> list[torch.Tensor]:
    """[E⁰, E¹, ..., Eᴸ] with Eˡ⁺¹ = Â Eˡ (no weights, no non-linearity)."""
    layers = [ego]
    for _ in range(n_layers):
        layers.append(torch.sparse.mm(adj, layers[-1]))
    return layers


def mean_readout(layers: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(layers, dim=0).mean(dim=0)
