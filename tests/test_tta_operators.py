"""TTA4SR operators: each operator's contract on token sequences and on batches (copies,
shapes, determinism per user and seed), and TNoise's ranges."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.blocks.sequence import GRU4Rec, SASRec
from plugins.tta4sr.operators import (PAD, SEQUENCE_OPERATORS, SequenceBatch, count, crop,
                                      insert, mask, pad_tokens, reorder, sequence_views,
                                      substitute, tmask_b, tmask_r, tnoise_views)

N_ITEMS = 40
MASK = N_ITEMS + 1
NEIGHBOUR = np.r_[0, np.roll(np.arange(1, N_ITEMS + 1), -1), MASK]   # token t -> t+1 (wraps)
AUX = {"mask_token": MASK, "neighbour": NEIGHBOUR, "read_at": "last"}


def seq(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(1, N_ITEMS + 1))[:n].astype(np.int64)


def is_subsequence(small: np.ndarray, big: np.ndarray) -> bool:
    it = iter(big.tolist())
    return all(x in it for x in small.tolist())


@pytest.mark.parametrize("n,ratio", [(1, 0.5), (7, 0.5), (10, 0.3), (33, 0.7), (20, 0.0)])
def test_tmask_r_deletes_floor_sigma_n_and_keeps_order(n, ratio):
    s = seq(n)
    out = tmask_r(s, ratio, np.random.default_rng(1))
    assert len(out) == n - min(count(ratio, n), n - 1)
    assert is_subsequence(out, s)


@pytest.mark.parametrize("n,ratio", [(7, 0.5), (10, 0.3), (30, 0.7)])
def test_tmask_b_keeps_length_and_blocks_floor_sigma_n(n, ratio):
    s = seq(n)
    out = tmask_b(s, ratio, np.random.default_rng(1), read_at="last")
    assert len(out) == n and (out == PAD).sum() == count(ratio, n)
    kept = out != PAD
    assert (out[kept] == s[kept]).all()          # survivors stay at their positions
    # trim: same blocked positions, trailing blocked ones dropped
    trimmed = tmask_b(s, ratio, np.random.default_rng(1), read_at="last_unmasked")
    assert trimmed[-1] != PAD and (trimmed == out[:len(trimmed)]).all()


def test_mask_uses_the_mask_token():
    s = seq(20)
    out = mask(s, 0.5, np.random.default_rng(0), mask_token=MASK)
    assert (out == MASK).sum() == 10 and (out[out != MASK] == s[out != MASK]).all()


def test_crop_is_one_contiguous_block():
    s = seq(20)
    out = crop(s, 0.7, np.random.default_rng(3))
    assert len(out) == 14
    start = int(np.flatnonzero(s == out[0])[0])
    assert (s[start:start + 14] == out).all()
    assert len(crop(seq(1), 0.7, np.random.default_rng(0))) == 1


def test_reorder_shuffles_one_block_only():
    s = seq(30)
    out = reorder(s, 0.2, np.random.default_rng(5))
    assert sorted(out) == sorted(s)
    diff = np.flatnonzero(out != s)
    assert len(diff) > 0 and diff.max() - diff.min() < count(0.2, 30)
    assert (reorder(seq(4), 0.2, np.random.default_rng(5)) == seq(4)).all()   # ⌊0.8⌋ = 0


def test_substitute_and_insert_use_the_most_similar_item():
    s = np.arange(1, 21, dtype=np.int64)                       # items 1..20
    far = np.r_[0, np.arange(1, N_ITEMS + 1) + 20, MASK]         # neighbour of t is t + 20
    far[far > N_ITEMS] = 0
    far[1:21] = np.arange(21, 41)
    out = substitute(s, 0.1, np.random.default_rng(0), neighbour=far)
    changed = np.flatnonzero(out != s)
    assert len(changed) == 2 and (out[changed] == s[changed] + 20).all()
    ins = insert(s, 0.1, np.random.default_rng(0), neighbour=far)
    new = np.flatnonzero(ins > 20)
    assert len(ins) == 22 and len(new) == 2
    assert (ins[ins <= 20] == s).all()                          # originals kept, in order
    assert (ins[new] == ins[new + 1] + 20).all()                # inserted before its item
    assert len(substitute(s[:3], 0.1, np.random.default_rng(0), neighbour=far)[
        substitute(s[:3], 0.1, np.random.default_rng(0), neighbour=far) > 20]) == 1   # max(1, .)


def batch(n_users: int = 5, L: int = 8, seed: int = 0, users=None) -> SequenceBatch:
    users = np.arange(n_users) if users is None else np.asarray(users)
    seqs = [seq(3 + 4 * int(u), seed=int(u)) for u in users]
    return SequenceBatch(users=users, sequences=seqs, tokens=pad_tokens(seqs, L), max_len=L,
                         mask_token=MASK, part="test", seed=seed)


@pytest.mark.parametrize("name", sorted(SEQUENCE_OPERATORS))
def test_views_are_m_copies_of_the_batch_shape_and_history_tokens_only(name):
    b = batch()
    views = sequence_views(SEQUENCE_OPERATORS[name], b, m=4, ratio=0.5, **AUX)
    assert len(views) == 4
    allowed = {PAD, MASK}
    for s in b.sequences:
        allowed |= set(s.tolist()) | set(NEIGHBOUR[s].tolist())
    for v in views:
        assert v.tokens.shape == (5, 8) and v.tokens.dtype == torch.long
        assert set(v.tokens.unique().tolist()) <= allowed
        assert v.inputs is None and v.output_noise is None
    if name not in ("substitute", "insert"):   # no new item can appear out of thin air
        for row, s in enumerate(b.sequences):
            for v in views:
                assert set(v.tokens[row].tolist()) <= set(s.tolist()) | {PAD, MASK}


@pytest.mark.parametrize("name", sorted(SEQUENCE_OPERATORS))
def test_views_are_deterministic_per_seed_and_per_user(name):
    fn = SEQUENCE_OPERATORS[name]
    a = sequence_views(fn, batch(seed=3), 3, 0.5, **AUX)
    b = sequence_views(fn, batch(seed=3), 3, 0.5, **AUX)
    assert all(torch.equal(x.tokens, y.tokens) for x, y in zip(a, b))
    # a user's copies do not depend on who else is in the batch (chunk-size independence)
    sub = sequence_views(fn, batch(seed=3, users=[4, 2]), 3, 0.5, **AUX)
    for x, y in zip(a, sub):
        assert torch.equal(x.tokens[[4, 2]], y.tokens)
    if name not in ("reorder",):   # reorder has ⌊βn⌋ < 2 for the shortest users
        c = sequence_views(fn, batch(seed=4), 3, 0.5, **AUX)
        assert any(not torch.equal(x.tokens, y.tokens) for x, y in zip(a, c))


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_tnoise_views_lie_in_their_ranges(cls):
    torch.manual_seed(0)
    model = cls(N_ITEMS, dim=8, max_len=8).eval()
    b = batch()
    views = tnoise_views(b, model, noise=(0.5, 1.0), output_noise=(1.0, 2.0), n_in=3, n_out=2)
    assert len(views) == 5
    emb = model.embed(b.tokens)
    for v in views[:3]:
        eps = v.inputs - emb
        assert eps.shape == (5, 8, 8) and eps.min() >= 0.5 and eps.max() <= 1.0
        assert v.tokens is b.tokens and v.output_noise is None
    for v in views[3:]:
        assert v.inputs is None and v.output_noise.shape == (5, 8)
        assert v.output_noise.min() >= 1.0 and v.output_noise.max() <= 2.0
    again = tnoise_views(batch(), model, (0.5, 1.0), (1.0, 2.0), 3, 2)
    assert all(torch.equal(x.inputs, y.inputs) for x, y in zip(views[:3], again[:3]))
    other = tnoise_views(batch(seed=9), model, (0.5, 1.0), (1.0, 2.0), 3, 2)
    assert not torch.equal(views[0].inputs, other[0].inputs)
