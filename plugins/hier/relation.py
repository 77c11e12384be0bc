"""HIER's relation embedding r(c): structure-only self-supervised GraphSAGE on the code
tree, pre-trained once and then frozen (spec §1.3, the released ``GraphEmbedding`` path).

* Node inputs x_v ~ N(0, I), random and fixed.
* 3 GraphSAGE-mean layers (hidden/output 128), ReLU + dropout 0.5 between layers.
  Messages flow parent -> child, so a node's neighbour mean is its parent's vector (0
  at the root): h_v^l = W_self h_v^{l-1} + W_nb h_{parent(v)}^{l-1} + b. After 3 layers a
  leaf is described by its category, block and chapter.
* Loss per node u of a batch: -[log σ(z_u·z_parent(u)) + log σ(-z_u·z_neg)], the negative
  uniform over all nodes, the root's positive itself. Adam 1e-3, batch 256, 50 epochs.

Why not torch_geometric: on a tree the SAGE-mean neighbourhood is one parent, so the
layer is a gather plus two linear maps; computing each step only on the batch's nodes
and their ancestors instead of a full-graph forward keeps the released batch size (256)
and epoch count (50) affordable on the 16k-node ICD-9 tree.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.blocks.medrec import cached_tensor


class TreeSAGE(nn.Module):
    """GraphSAGE-mean on a tree with parent -> child messages."""

    def __init__(self, parent: np.ndarray, dim: int = 128, layers: int = 3,
                 dropout: float = 0.5, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        n = len(parent)
        self.register_buffer("x", torch.randn(n, dim, generator=generator))
        self.register_buffer("parent", torch.as_tensor(parent, dtype=torch.long))
        self.lin_self = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.lin_nb = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(layers))
        self.layers, self.dropout = layers, dropout

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        """z for ``nodes``. Only what they need is computed: layer l runs on the nodes
        within L - l steps up from ``nodes`` (their ancestors), once per node, as a
        full-graph pass would but on a few hundred nodes instead of the whole tree."""
        sets = [torch.unique(nodes)]
        for _ in range(self.layers):
            cur = sets[-1]
            up = self.parent[cur]
            sets.append(torch.unique(torch.cat([cur, up[up >= 0]])))
        pos = torch.full((len(self.parent),), -1, dtype=torch.long, device=nodes.device)
        h = self.x[sets[-1]]
        for layer in range(self.layers):
            src, dst = sets[self.layers - layer], sets[self.layers - layer - 1]
            pos[src] = torch.arange(len(src), device=nodes.device)
            up = self.parent[dst]
            has_up = (up >= 0).unsqueeze(-1).to(h.dtype)
            nb = h[pos[up.clamp(min=0)]] * has_up  # the root has no parent: term 0
            v = self.lin_self[layer](h[pos[dst]]) + self.lin_nb[layer](nb)
            if layer < self.layers - 1:
                v = F.dropout(F.relu(v), self.dropout, self.training)
            h = v
        pos[sets[0]] = torch.arange(len(sets[0]), device=nodes.device)
        return h[pos[nodes]]


def pretrain_relation(parent: np.ndarray, seed: int, dim: int = 128, layers: int = 3,
                      epochs: int = 50, batch_size: int = 256, lr: float = 1e-3,
                      dropout: float = 0.5) -> tuple[torch.Tensor, list[float]]:
    """Train TreeSAGE with the parent-positive / uniform-negative logistic loss and return
    (z for every node in eval mode [n, dim], per-epoch mean loss)."""
    gen = torch.Generator().manual_seed(seed)
    model = TreeSAGE(parent, dim, layers, dropout, gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    par = torch.as_tensor(parent, dtype=torch.long)
    n = len(parent)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total, batches = 0.0, 0
        for s in range(0, n, batch_size):
            u = order[s:s + batch_size]
            pos = torch.where(par[u] >= 0, par[u], u)
            neg = torch.randint(0, n, (len(u),), generator=gen)
            z = model(torch.cat([u, pos, neg]))
            zu, zp, zn = z.split(len(u))
            loss = -(F.logsigmoid((zu * zp).sum(-1)) + F.logsigmoid(-(zu * zn).sum(-1))).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        losses.append(total / batches)
    model.eval()
    with torch.no_grad():
        z = torch.cat([model(torch.arange(s, min(s + 4096, n))) for s in range(0, n, 4096)])
    return z, losses


def relation_table(tree, seed: int, cache_dir: Path, **hp) -> torch.Tensor:
    """Pre-trained z for every node of ``tree``, cached by (tree, seed, hyper-parameters)
    in the harness cache: every HIER arm of a seed shares one pre-training."""
    inputs = {"tree": tree.kind, "seed": seed, "hp": sorted(hp.items()),
              "nodes": hashlib.sha256("\n".join(tree.nodes).encode()).hexdigest(),
              "parent": hashlib.sha256(np.asarray(tree.parent, np.int64).tobytes()).hexdigest()}
    return cached_tensor(cache_dir, "medrec-relation", inputs,
                         lambda: pretrain_relation(tree.parent, seed, **hp)[0])
