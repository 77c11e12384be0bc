"""Sequence encoders for next-item recommendation (SASRec, GRU4Rec) and their training,
shared by the baselines plugin and test-time-augmentation methods (TTA4SR).

Conventions (every caller relies on them):

* **Tokens.** Item ``i`` (internal id ``0..n_items-1``) is token ``i + 1``. Token ``0`` is
  padding (its embedding row is zero and never trained); token ``n_items + 1`` is a
  reserved ``[mask]`` token, never a training input, for test-time operators.
* **Padding.** Histories are **left-padded** to ``max_len`` and truncated to their last
  ``max_len`` events, so the most recent item is always at position ``-1`` and the
  prediction is read there. Attention never uses padded keys (a padded query attends to
  itself only, which keeps softmax finite); GRU4Rec rolls padding to the end internally.
* **Histories at scoring time.** Built by :func:`history_tokens` from the split, in time
  order (ties by event order): training events when scoring ``valid``, training +
  validation events when scoring ``test``. The scored target is never in its own history.
  The harness still masks the user's train (+valid) items from the ranking, as for every
  ranking model (a repeat of a seen item is never a target under this protocol).
* **Representation access.** :meth:`SequenceEncoder.embed` turns tokens into input
  representations and :meth:`SequenceEncoder.encode` accepts them back, so an operator can
  mask or substitute tokens, or add noise to representations, between the two steps.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from ..api import Params, Rate
from ..training import fit, minibatch_epoch

PAD = 0


# --- histories -------------------------------------------------------------------------------

def chronological_sequences(dataset: Any, parts: tuple[str, ...]) -> list[np.ndarray]:
    """Each user's item ids over the events of ``parts``, in time order (ties: event order,
    the same stable order the leave-one-out split uses)."""
    idx = np.concatenate([{"train": dataset.train_idx, "valid": dataset.valid_idx,
                           "test": dataset.test_idx}[p] for p in parts])
    data = dataset.data
    ts = data.timestamp[idx] if data.timestamp is not None else np.zeros(len(idx))
    order = idx[np.lexsort((idx, ts, data.user[idx]))]       # by user, then time, then event
    users = data.user[order]
    bounds = np.searchsorted(users, np.arange(data.n_users + 1))
    return [data.item[order[bounds[u]:bounds[u + 1]]] for u in range(data.n_users)]


def pad_left(sequences: list[np.ndarray], max_len: int) -> torch.Tensor:
    """Item-id sequences -> tokens ``[len(sequences), max_len]``, last ``max_len`` kept."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq[-max_len:], dtype=np.int64)
        if len(tail):
            out[row, max_len - len(tail):] = tail + 1
    return torch.from_numpy(out)


def history_tokens(dataset: Any, part: str, max_len: int) -> torch.Tensor:
    """Every user's input when scoring ``part``: train events for ``valid``, train+valid
    for ``test`` (cached on the dataset, which is immutable once split)."""
    if part not in ("valid", "test"):
        raise ValueError(f"history for part '{part}': expected 'valid' or 'test'")
    parts = ("train",) if part == "valid" else ("train", "valid")
    return dataset.memo(("history_tokens", part, max_len),
                        lambda: pad_left(chronological_sequences(dataset, parts), max_len))


def training_windows(sequences: list[np.ndarray], max_len: int, mode: str = "window"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-item training examples: (tokens ``[N, max_len + 1]``, loss mask ``[N, max_len]``).

    Column ``j`` of the inputs (``tokens[:, :-1]``) predicts ``tokens[:, j + 1]``.
    ``prefix`` (RecBole's data augmentation): one example per target, with its full
    ``max_len`` context and only the last position in the loss. ``window`` (SASRec's own
    training, made overlap-aware): the first ``max_len`` events form one window, then
    windows end every ``max_len // 2`` events back from the last; each target is in the
    loss of exactly one window, with its whole history (first window) or at least
    ``max_len // 2`` items of context; ~``max_len/2``× fewer forward passes than prefix.
    """
    if mode not in ("window", "prefix"):
        raise ValueError(f"training mode '{mode}': expected 'window' or 'prefix'")
    L, stride = max_len, max(1, max_len // 2)
    rows, masks = [], []
    for seq in sequences:
        n = len(seq)
        if n < 2:
            continue
        padded = np.concatenate([np.zeros(L, np.int64), np.asarray(seq, np.int64) + 1])
        if mode == "prefix":
            ends = np.arange(1, n)
            prev = ends - 1
        else:  # windows ending at n-1, n-1-stride, ... down to the first full window
            ends = np.concatenate([[min(n - 1, L)], np.arange(n - 1, L, -stride)[::-1]])
            prev = np.concatenate([[0], ends[:-1]])
        win = np.lib.stride_tricks.sliding_window_view(padded, L + 1)[ends]   # ends at seq pos t
        pos = ends[:, None] - L + np.arange(1, L + 1)[None, :]                 # seq pos of each target
        mask = (pos > prev[:, None]) & (pos >= 1)
        rows.append(win)
        masks.append(mask)
    if not rows:
        return torch.zeros(0, L + 1, dtype=torch.long), torch.zeros(0, L, dtype=torch.bool)
    return torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(masks))


# --- encoders --------------------------------------------------------------------------------

class SequenceEncoder(nn.Module):
    """Item embedding table + an encoder of left-padded token sequences.

    Subclasses implement :meth:`encode`. Scores are dot products of the last position's
    output with the item rows of the (shared input/output) embedding table.
    """

    #: True when the last position's output does not depend on leading padding, so a
    #: scorer may cut a history's window to its length (harness.scoring.SequenceScorer)
    trims_padding: bool = False

    def __init__(self, n_items: int, dim: int, max_len: int) -> None:
        super().__init__()
        self.n_items, self.dim, self.max_len = n_items, dim, max_len
        self.mask_token = n_items + 1
        self.item_emb = nn.Embedding(n_items + 2, dim, padding_idx=PAD)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Input representations ``[B, L, d]`` of tokens (the layer TTA operators edit)."""
        return self.item_emb(tokens)

    def encode(self, tokens: torch.Tensor, inputs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Outputs ``[B, L, d]`` at every position; ``inputs`` replaces ``embed(tokens)``
        (``tokens`` still defines the padding mask)."""
        raise NotImplementedError

    def item_weights(self) -> torch.Tensor:
        """Output item representations ``[n_items, d]`` (rows of real items only)."""
        return self.item_emb.weight[1:self.n_items + 1]

    def last_hidden(self, tokens: torch.Tensor, inputs: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.encode(tokens, inputs)[:, -1]

    def score_sequences(self, tokens: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, n_items]`` for the next item after each left-padded history."""
        return self.last_hidden(tokens) @ self.item_weights().T

    def next_item_loss(self, tokens: torch.Tensor, mask: torch.Tensor, loss: str = "ce",
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The next-item loss at the masked positions.

        ``ce``: cross-entropy over all items (RecBole's CE loss, the default). ``bce``:
        binary cross-entropy of the target against one uniformly drawn negative item per
        position (never the target), as the official SASRec and TTA4SR code train."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        hidden = self.encode(inputs)[mask]
        target = targets[mask] - 1
        if loss == "ce":
            return F.cross_entropy(hidden @ self.item_weights().T, target)
        if loss != "bce":
            raise ValueError(f"unknown next-item loss '{loss}' (ce or bce).")
        # uniform over the n_items - 1 items that are not the target
        neg = torch.randint(0, self.n_items - 1, target.shape, generator=generator)
        neg = (neg + (neg >= target.cpu()).long()).to(target.device)
        weights = self.item_weights()
        pos_s = (hidden * weights[target]).sum(-1)
        neg_s = (hidden * weights[neg]).sum(-1)
        return (F.binary_cross_entropy_with_logits(pos_s, torch.ones_like(pos_s))
                + F.binary_cross_entropy_with_logits(neg_s, torch.zeros_like(neg_s)))


class SASRec(SequenceEncoder):
    """SASRec (Kang & McAuley 2018) as RecBole 1.2.1 builds it: item + learned position
    embeddings, LayerNorm, dropout, post-LN Transformer blocks (GELU, FFN ``inner``),
    causal attention over non-padded keys, N(0, 0.02) init."""

    trims_padding = True  # positions count from the right; padded keys are masked

    def __init__(self, n_items: int, dim: int = 64, max_len: int = 50, n_layers: int = 2,
                 n_heads: int = 2, inner: int = 256, dropout: float = 0.5,
                 attn_dropout: float = 0.5, layer_norm_eps: float = 1e-12) -> None:
        super().__init__(n_items, dim, max_len)
        self.n_heads = n_heads
        self.pos_emb = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, n_heads, inner, dropout=dropout, activation="gelu",
                                           layer_norm_eps=layer_norm_eps, batch_first=True)
        for block in (layer.self_attn,):
            block.dropout = attn_dropout
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()
        elif isinstance(module, nn.MultiheadAttention):
            module.in_proj_weight.data.normal_(0.0, 0.02)
            module.in_proj_bias.data.zero_()

    def attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Bool ``[B * heads, L, L]``, True = blocked: future keys and padded keys, except
        a position's own key (a padded query then has one finite logit, never NaN)."""
        L = tokens.shape[1]
        eye = torch.eye(L, dtype=torch.bool, device=tokens.device)
        future = torch.triu(torch.ones(L, L, dtype=torch.bool, device=tokens.device), 1)
        blocked = future | ((tokens == PAD).unsqueeze(1) & ~eye)
        return blocked.repeat_interleave(self.n_heads, dim=0)

    def _inputs(self, tokens: torch.Tensor, inputs: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.embed(tokens) if inputs is None else inputs
        positions = torch.arange(tokens.shape[1], device=tokens.device) + (self.max_len - tokens.shape[1])
        return self.dropout(self.norm(x + self.pos_emb(positions)))

    def encode(self, tokens: torch.Tensor, inputs: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.blocks(self._inputs(tokens, inputs), mask=self.attention_mask(tokens))

    def last_hidden(self, tokens: torch.Tensor, inputs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``encode(tokens)[:, -1]`` without the work nobody reads: the last block's
        queries are the last position only (keys and values still cover every position).
        Scoring needs just this row, and the last block's feed-forward and attention
        output over the other positions were ~40% of full-ranking evaluation time."""
        x = self._inputs(tokens, inputs)
        mask = self.attention_mask(tokens)
        *first, last = self.blocks.layers
        for layer in first:
            x = layer(x, src_mask=mask)
        q = x[:, -1:]
        attended = last.self_attn(q, x, x, attn_mask=mask[:, -1:, :], need_weights=False)[0]
        h = last.norm1(q + last.dropout1(attended))   # post-LN block, as nn.TransformerEncoderLayer
        return last.norm2(h + last._ff_block(h))[:, 0]


class GRU4Rec(SequenceEncoder):
    """GRU4Rec (Hidasi et al. 2016) as RecBole 1.2.1 builds it: embedding dropout, a GRU
    without bias, a dense layer back to the embedding size, Xavier init."""

    trims_padding = True  # zero inputs keep a bias-free GRU's zero state exactly zero

    def __init__(self, n_items: int, dim: int = 64, max_len: int = 50, hidden: int = 128,
                 n_layers: int = 1, dropout: float = 0.3) -> None:
        super().__init__(n_items, dim, max_len)
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden, n_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(hidden, dim)
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()
        for name, w in self.gru.named_parameters():
            nn.init.xavier_uniform_(w)

    def encode(self, tokens: torch.Tensor, inputs: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.emb_dropout(self.embed(tokens) if inputs is None else inputs)
        # Roll left padding to the end so the GRU starts at the first real item; rolled
        # back afterwards (outputs at padded positions are never read).
        L = tokens.shape[1]
        shift = (tokens == PAD).cumprod(dim=1).sum(dim=1, keepdim=True)   # leading pads
        ar = torch.arange(L, device=tokens.device).unsqueeze(0)
        fwd = (ar + shift) % L
        x = x.gather(1, fwd.unsqueeze(-1).expand_as(x))
        out, _ = self.gru(x)
        out = self.dense(out)
        back = (ar - shift) % L
        return out.gather(1, back.unsqueeze(-1).expand_as(out))


# --- training ----------------------------------------------------------------------------

class SequenceParams(Params):
    dim: int = Field(64, ge=1)
    max_len: int = Field(50, ge=2)
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(128, ge=1, description="training examples (windows or prefixes) per step")
    lr: Rate = 1e-3
    weight_decay: float = Field(0.0, ge=0)
    train_mode: Literal["window", "prefix"] = "window"
    loss: Literal["ce", "bce"] = Field(
        "ce", description="ce: softmax over all items; bce: one sampled negative per position "
        "(the official SASRec/TTA4SR code's loss)")
    patience: int = Field(5, ge=1)
    eval_every: int = Field(1, ge=1)


class SASRecParams(SequenceParams):
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    inner: int = Field(256, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    attn_dropout: float = Field(0.5, ge=0, lt=1)


class GRU4RecParams(SequenceParams):
    hidden: int = Field(128, ge=1)
    n_layers: int = Field(1, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)


def train_next_item(model: SequenceEncoder, dataset: Any, ctx: Any, p: SequenceParams) -> dict:
    """Next-item training (CE, or BCE with one sampled negative) with validation early
    stopping (harness.training.fit)."""
    tokens, mask = training_windows(chronological_sequences(dataset, ("train",)), model.max_len,
                                    p.train_mode)
    if len(tokens) == 0:
        raise ValueError(f"dataset '{dataset.name}' has no user with 2+ training events: "
                         "nothing to train a sequential model on.")
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    rng = ctx.rng("train.order")
    negatives = ctx.rng("train.negatives")  # its own stream: ce runs draw nothing from it
    device = ctx.device

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return model.next_item_loss(tokens[idx].to(device), mask[idx].to(device), p.loss,
                                    negatives)

    def epoch(_: int) -> float:
        return minibatch_epoch(len(tokens), p.batch_size, rng, opt, batch_loss)

    return fit(model, epoch, dataset, ctx, epochs=p.epochs, eval_every=p.eval_every,
               patience=p.patience)
