"""Strong simple item-item baselines: EASE^R and ItemKNN.

The reproducibility literature (Dacrema et al. 2019; Steck 2019) found that these
untrained or closed-form models beat many published neural recommenders, so every top-K
board should carry them. Both are fitted on the training matrix only (validation and test
interactions never enter the item-item weights) and score a user as ``x_u @ W``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
from pydantic import ConfigDict, Field

from harness.api import Params


class EASEParams(Params):
    """EASE^R's only hyper-parameter is the L2 weight λ, written ``lambda`` as in the paper
    (a Python keyword, hence the alias; ``l2`` works too)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    l2: float = Field(500.0, alias="lambda", gt=0, allow_inf_nan=False,
                      description="L2 regularisation λ added to the Gram matrix's diagonal")


class ItemKNNParams(Params):
    k: int = Field(100, ge=1, description="neighbours kept per item (largest similarities)")
    shrink: float = Field(0.0, ge=0, allow_inf_nan=False,
                          description="shrinkage term added to the cosine denominator")


class ItemItemScorer(nn.Module):
    """Scores users by their training row times a dense item-item weight matrix."""

    def __init__(self, train: sp.csr_matrix, weights: np.ndarray) -> None:
        super().__init__()
        self.train = train.tocsr().astype(np.float32)
        self.register_buffer("weights", torch.from_numpy(np.ascontiguousarray(weights, np.float32)))

    def score(self, users: torch.Tensor) -> torch.Tensor:
        rows = self.train[users.cpu().numpy()]
        scores = torch.from_numpy(np.asarray(rows @ self.weights.cpu().numpy()))
        return scores.to(users.device)


def ease_weights(train: sp.csr_matrix, l2: float) -> np.ndarray:
    """Steck (2019), eq. 8: ``P = (XᵀX + λI)⁻¹``, ``B = I − P·diag(1/diag(P))`` with a zero
    diagonal, so an item never explains itself. O(n_items³) time, O(n_items²) memory."""
    x = train.astype(np.float64)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


def itemknn_weights(train: sp.csr_matrix, k: int, shrink: float) -> np.ndarray:
    """Cosine item-item similarity ``|U_i ∩ U_j| / (‖i‖‖j‖ + shrink)`` on the binary training
    matrix, keeping each item's ``k`` largest neighbours (self excluded); column j of the
    result holds the weights that items contribute to the score of item j."""
    x = (train > 0).astype(np.float64)
    co = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(co))
    sim = co / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[0]:
        # per target item j keep the k largest sim[:, j]; ties resolved by argpartition
        drop = np.argpartition(-sim, k, axis=0)[k:, :]
        np.put_along_axis(sim, drop, 0.0, axis=0)
    return sim
