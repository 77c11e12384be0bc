"""Test-time augmentation operators (TTA4SR, Dang et al. SIGIR 2025) and their contract.

An operator turns a :class:`SequenceBatch` (every user's *full* history, as tokens) into
``m`` :class:`View` objects; the wrapper scores each view with the frozen backbone and
averages the scores. Sequence operators edit the full history and only then keep the last
``max_len`` tokens (as the official code does, so deleting items lets older ones in).
Representation operators (TNoise) edit what :meth:`SequenceEncoder.embed` returns, or the
final hidden state.

Randomness is drawn per user from ``(seed, part, user)``, so a user's copies do not depend
on which other users share the batch (scores are chunk-size independent).

Token conventions are those of :mod:`harness.blocks.sequence`: item ``i`` is token
``i + 1``, ``0`` is padding (blocked as an attention key), ``n_items + 1`` is ``[mask]``.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

PAD = 0


@dataclass
class View:
    """One augmented input for every user of a batch.

    ``tokens`` defines the padding/attention mask; ``inputs`` (if set) replaces
    ``embed(tokens)``; ``output_noise`` (if set) is added to the last hidden state before
    scoring. Views sharing the same ``tokens`` object and no ``inputs`` share one encoder
    pass (TNoise's output-level copies)."""

    tokens: torch.Tensor                         # [B, L] long
    inputs: Optional[torch.Tensor] = None        # [B, L, d]
    output_noise: Optional[torch.Tensor] = None  # [B, d]


@dataclass
class SequenceBatch:
    """What an operator's ``apply`` receives: users, their full histories and the RNG recipe."""

    users: np.ndarray                  # user ids, one per row
    sequences: list[np.ndarray]        # full histories as tokens, oldest first, no padding
    tokens: torch.Tensor               # the un-augmented input [B, max_len], left-padded
    max_len: int
    mask_token: int
    part: str = "test"
    seed: int = 0
    dataset: Any = None                # for operators that need training statistics
    extra: dict = field(default_factory=dict)

    def _entropy(self, row: int) -> list[int]:
        return [int(self.seed), zlib.crc32(self.part.encode()), int(self.users[row])]

    def rng(self, row: int) -> np.random.Generator:
        """The numpy RNG of one user's copies (depends on seed, part and user only)."""
        return np.random.default_rng(self._entropy(row))

    def torch_rng(self, row: int) -> torch.Generator:
        seed = np.random.SeedSequence(self._entropy(row)).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(seed) % (2**63))


def pad_tokens(sequences: list[np.ndarray], max_len: int) -> torch.Tensor:
    """Token sequences -> ``[len, max_len]``, last ``max_len`` kept, left-padded with 0."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq[-max_len:], dtype=np.int64)
        if len(tail):
            out[row, max_len - len(tail):] = tail
    return torch.from_numpy(out)


def count(ratio: float, n: int) -> int:
    """⌊ratio·n⌋, robust to float error (0.3·10 is 3, not 2)."""
    return int(math.floor(ratio * n + 1e-9))


# --- sequence operators: (tokens, ratio, rng, **aux) -> tokens ------------------------------

def tmask_r(seq: np.ndarray, ratio: float, rng: np.random.Generator, **_: Any) -> np.ndarray:
    """TMask-R: delete ⌊σn⌋ random interactions (at least one kept), order preserved."""
    n = len(seq)
    k = min(count(ratio, n), n - 1)
    keep = np.ones(n, dtype=bool)
    if k > 0:
        keep[rng.choice(n, k, replace=False)] = False
    return seq[keep]


def tmask_b(seq: np.ndarray, ratio: float, rng: np.random.Generator, *,
            read_at: str = "last_unmasked", **_: Any) -> np.ndarray:
    """TMask-B: replace ⌊σn⌋ random interactions (at least one kept) by padding, which
    the attention mask blocks as keys; positions are unchanged. ``last_unmasked`` drops
    trailing blocked positions so the prediction is read at the last real item (a pad as
    the last input never occurs in training; spec §1.5/1.7)."""
    n = len(seq)
    k = min(count(ratio, n), n - 1)
    out = seq.copy()
    if k > 0:
        out[rng.choice(n, k, replace=False)] = PAD
    if read_at == "last_unmasked":
        out = np.trim_zeros(out, "b")
    return out


def mask(seq: np.ndarray, ratio: float, rng: np.random.Generator, *, mask_token: int,
         **_: Any) -> np.ndarray:
    """Mask (CoSeRec): replace ⌊γn⌋ random interactions by the ``[mask]`` token, which
    does take part in the computation (its embedding was never trained as an input)."""
    n = len(seq)
    out = seq.copy()
    k = count(ratio, n)
    if k > 0:
        out[rng.choice(n, k, replace=False)] = mask_token
    return out


def crop(seq: np.ndarray, ratio: float, rng: np.random.Generator, **_: Any) -> np.ndarray:
    """Crop: keep one random contiguous block of max(1, ⌊ηn⌋) interactions."""
    n = len(seq)
    c = min(n, max(1, count(ratio, n)))
    start = int(rng.integers(0, n - c + 1))
    return seq[start:start + c].copy()


def reorder(seq: np.ndarray, ratio: float, rng: np.random.Generator, **_: Any) -> np.ndarray:
    """Reorder: shuffle one random contiguous block of ⌊βn⌋ interactions."""
    n = len(seq)
    c = count(ratio, n)
    out = seq.copy()
    if c >= 2:
        start = int(rng.integers(0, n - c + 1))
        out[start:start + c] = rng.permutation(out[start:start + c])
    return out


def substitute(seq: np.ndarray, ratio: float, rng: np.random.Generator, *,
               neighbour: np.ndarray, **_: Any) -> np.ndarray:
    """Substitute: replace max(1, ⌊αn⌋) random interactions by their most similar item."""
    n = len(seq)
    k = min(n, max(1, count(ratio, n)))
    out = seq.copy()
    pos = rng.choice(n, k, replace=False)
    out[pos] = neighbour[out[pos]]
    return out


def insert(seq: np.ndarray, ratio: float, rng: np.random.Generator, *,
           neighbour: np.ndarray, **_: Any) -> np.ndarray:
    """Insert: before max(1, ⌊αn⌋) random interactions, insert their most similar item."""
    n = len(seq)
    k = min(n, max(1, count(ratio, n)))
    pos = np.sort(rng.choice(n, k, replace=False))
    return np.insert(seq, pos, neighbour[seq[pos]])


SEQUENCE_OPERATORS: dict[str, Callable[..., np.ndarray]] = {
    "tmask_r": tmask_r, "tmask_b": tmask_b, "mask": mask, "crop": crop,
    "reorder": reorder, "substitute": substitute, "insert": insert,
}


def sequence_views(fn: Callable[..., np.ndarray], batch: SequenceBatch, m: int, ratio: float,
                   **aux: Any) -> list[View]:
    """``m`` views, copy ``j`` of every user drawn from that user's own RNG stream."""
    copies: list[list[np.ndarray]] = [[] for _ in range(m)]
    for row, seq in enumerate(batch.sequences):
        rng = batch.rng(row)
        for j in range(m):
            copies[j].append(fn(seq, ratio, rng, **aux) if len(seq) else seq)
    return [View(pad_tokens(c, batch.max_len)) for c in copies]


# --- representation operator: TNoise -------------------------------------------------------

def tnoise_views(batch: SequenceBatch, model: Any, noise: tuple[float, float],
                 output_noise: tuple[float, float], n_in: int, n_out: int) -> list[View]:
    """TNoise: ``n_in`` passes with ε ~ U(b, a)^d added to the input item embeddings of
    every position (padding included, before position embeddings and LayerNorm), and
    ``n_out`` copies of the clean last hidden state plus δ ~ U(b₁, a₁)^d (one shared
    encoder pass). All are averaged by the wrapper; the clean pass is not included."""
    tokens = batch.tokens
    B, L = tokens.shape
    d = model.dim
    eps = torch.empty(n_in, B, L, d)
    delta = torch.empty(n_out, B, d)
    (b, a), (b1, a1) = noise, output_noise
    for row in range(B):
        g = batch.torch_rng(row)
        eps[:, row] = torch.rand(n_in, L, d, generator=g) * (a - b) + b
        delta[:, row] = torch.rand(n_out, d, generator=g) * (a1 - b1) + b1
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    base = model.embed(tokens)
    views = [View(tokens, inputs=base + eps[j].to(device)) for j in range(n_in)]
    views += [View(tokens, output_noise=delta[j].to(device)) for j in range(n_out)]
    return views


# --- item similarity for Substitute / Insert --------------------------------------------------

def neighbour_table(model: Any, dataset: Any, similarity: str) -> np.ndarray:
    """``neighbour[token]`` = token of the most similar other item (pad and mask map to
    themselves). ``embedding``: cosine of the backbone's trained item embeddings;
    ``cooccurrence``: ItemCF counts over training users (training events only, so
    neither validation nor test targets inform the choice)."""
    n_items = model.n_items
    if similarity == "embedding":
        with torch.no_grad():
            w = torch.nn.functional.normalize(model.item_weights().detach().float().cpu(), dim=1)
            sim = w @ w.T
            sim.fill_diagonal_(-float("inf"))
            best = sim.argmax(dim=1).numpy()
    elif similarity == "cooccurrence":
        x = dataset.matrix("train").astype(np.float32)
        x.data[:] = 1.0
        co = (x.T @ x).tolil()
        co.setdiag(0)
        co = co.tocsr()
        best = np.asarray(co.argmax(axis=1)).ravel()
        has = np.asarray(co.max(axis=1).todense()).ravel() > 0
        best = np.where(has, best, np.arange(n_items))   # never co-occurs: keep the item
    else:
        raise ValueError(f"similarity '{similarity}': expected 'embedding' or 'cooccurrence'")
    table = np.arange(n_items + 2, dtype=np.int64)
    table[1:n_items + 1] = best + 1
    return table
