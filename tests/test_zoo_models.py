"""Zoo models on tiny data: forward/backward, LightGCN against a dense reference,
sequence conventions (padding, windows, no target leakage), and end-to-end cells."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.blocks.graph import LightGCN
from harness.blocks.sequence import (GRU4Rec, SASRec, chronological_sequences, history_tokens,
                                     pad_left, training_windows)
from harness.data.dataset import Dataset
from harness.data.splits import leave_one_out, random_ratio
from harness.data.synthetic import generate


@pytest.fixture(scope="module")
def seq_dataset() -> Dataset:
    data = generate(n_users=30, n_items=40, n_interactions=600, seed=2)
    return Dataset("syn", "sequential", data, *leave_one_out(data), "s")


@pytest.fixture(scope="module")
def topk_dataset() -> Dataset:
    data = generate(n_users=30, n_items=40, n_interactions=600, seed=2)
    return Dataset("syn", "topk", data, *random_ratio(data, (0.8, 0.1, 0.1), 0), "t")


def test_lightgcn_matches_dense_reference(topk_dataset):
    torch.manual_seed(0)
    model = LightGCN.from_dataset(topk_dataset, dim=4, n_layers=2)
    r = topk_dataset.train_matrix.toarray()
    U, I = r.shape
    a = np.block([[np.zeros((U, U)), r], [r.T, np.zeros((I, I))]])
    deg = a.sum(1)
    d = np.where(deg > 0, deg, 1) ** -0.5 * (deg > 0)
    norm = d[:, None] * a * d[None, :]
    e0 = model.ego().detach().numpy().astype(np.float64)
    final = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    model.eval()
    u, i = model.embeddings()
    assert np.allclose(u.detach().numpy(), final[:U], atol=1e-5)
    assert np.allclose(i.detach().numpy(), final[U:], atol=1e-5)


@pytest.mark.parametrize("kind", ["mf", "lightgcn"])
def test_pairwise_models_forward_backward(kind, topk_dataset):
    from plugins.baselines.models import MF

    torch.manual_seed(0)
    model = (MF(topk_dataset.n_users, topk_dataset.n_items, 8) if kind == "mf"
             else LightGCN.from_dataset(topk_dataset, dim=8, n_layers=2))
    users, pos = topk_dataset.train_pairs()
    neg = torch.randint(topk_dataset.n_items, (len(users), 2))
    loss, reg = model.pairwise_loss(users, pos, neg)
    (loss + 1e-4 * reg).backward()
    assert torch.isfinite(loss) and loss > 0 and reg > 0
    assert model.user.weight.grad.abs().sum() > 0 and model.item.weight.grad.abs().sum() > 0
    assert model.score(users[:5]).shape == (5, topk_dataset.n_items)


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_sequence_models_forward_backward(cls, seq_dataset):
    torch.manual_seed(0)
    model = cls(seq_dataset.n_items, dim=16, max_len=10)
    tokens, mask = training_windows(chronological_sequences(seq_dataset, ("train",)), 10)
    loss = model.next_item_loss(tokens[:16], mask[:16])
    loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - np.log(seq_dataset.n_items)) < 1.0
    assert model.item_emb.weight.grad[1:].abs().sum() > 0
    assert model.item_emb.weight.grad[0].abs().sum() == 0          # padding row never trained
    model.eval()
    scores = model.score_sequences(history_tokens(seq_dataset, "test", 10)[:4])
    assert scores.shape == (4, seq_dataset.n_items) and torch.isfinite(scores).all()


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_padding_does_not_change_the_prediction(cls):
    """A history scores the same whatever the amount of left padding (no leakage from
    padded positions; SASRec positions are counted from the right)."""
    torch.manual_seed(0)
    model = cls(20, dim=8, max_len=12).eval()
    short = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 3, 5, 7, 2, 9]])
    if cls is GRU4Rec:  # the GRU ignores leading padding entirely
        shorter = torch.tensor([[0, 0, 3, 5, 7, 2, 9]])
        assert torch.allclose(model.score_sequences(short)[0],
                              model.encode(shorter)[:, -1] @ model.item_weights().T, atol=1e-5)
    other_pad = short.clone()
    other_pad[0, :7] = 0
    assert torch.allclose(model.score_sequences(short), model.score_sequences(other_pad))
    # changing a padded position's embedding input must not change the output
    x = model.embed(short)
    x2 = x.clone()
    x2[0, 2] += 5.0
    assert torch.allclose(model.last_hidden(short, x), model.last_hidden(short, x2), atol=1e-5)


def test_sasrec_is_causal():
    torch.manual_seed(0)
    model = SASRec(20, dim=8, max_len=6).eval()
    a = torch.tensor([[0, 1, 2, 3, 4, 5]])
    b = torch.tensor([[0, 1, 2, 3, 4, 9]])
    ha, hb = model.encode(a), model.encode(b)
    assert torch.allclose(ha[:, :5], hb[:, :5], atol=1e-6) and not torch.allclose(ha[:, 5], hb[:, 5])


def test_training_windows_cover_each_target_once():
    seqs = [np.arange(23), np.array([4, 7]), np.array([9])]
    for mode in ("window", "prefix"):
        tokens, mask = training_windows(seqs, 8, mode)
        targets = tokens[:, 1:][mask] - 1
        inputs = tokens[:, :-1][mask]
        assert (inputs > 0).all()
        expected = sorted(list(range(1, 23)) + [7])
        assert sorted(targets.tolist()) == expected, mode
    tokens, mask = training_windows([np.arange(30)], 8, "window")
    # every target but those of the first window has at least max_len // 2 items of context
    ctx = (tokens[:, :-1] > 0).long().cumsum(1)[mask]
    targets = tokens[:, 1:][mask] - 1
    assert (ctx == torch.clamp(targets, max=10**9)).logical_or(ctx >= 4).all()
    assert (ctx[targets <= 8] == targets[targets <= 8]).all()   # early targets: whole history


def test_history_never_contains_the_target(seq_dataset):
    L = 50
    data = seq_dataset.data
    for part, parts in (("valid", ("train",)), ("test", ("train", "valid"))):
        hist = history_tokens(seq_dataset, part, L)
        truth = seq_dataset.part(part)
        for u, target in zip(truth.user, truth.item):
            row = hist[u][hist[u] > 0] - 1
            assert target + 1 not in hist[u].tolist() or (row == target).sum() == \
                ((data.user == u) & (data.item == target)).sum() - 1
            # the last history item is the event right before the target in time
            events = np.flatnonzero(data.user == u)
            allowed = np.concatenate([{"train": seq_dataset.train_idx, "valid": seq_dataset.valid_idx}[p]
                                      for p in parts])
            own = np.intersect1d(events, allowed)
            assert data.timestamp[own].max() <= data.timestamp[(data.user == u) & (data.item == target)].min()
            assert len(row) == min(L, len(own))
    assert pad_left([np.array([1, 2, 3])], 5).tolist() == [[0, 0, 2, 3, 4]]


def test_sequential_cell_end_to_end_is_deterministic(write_suite, registry):
    from harness.runner import prepare_dataset, run_cell
    from harness.suite import load_suite

    path = write_suite({
        "suite": "zoo-seq",
        "datasets": [{"name": "synthetic", "task": "sequential",
                      "params": {"n_users": 60, "n_items": 50, "n_interactions": 1500},
                      "split": {"strategy": "leave_one_out"}},
                     {"name": "synthetic", "label": "topk",
                      "params": {"n_users": 60, "n_items": 50, "n_interactions": 1500}}],
        "methods": [{"name": "sasrec", "datasets": ["synthetic"],
                     "params": {"dim": 16, "epochs": 2, "batch_size": 16, "max_len": 20}},
                    {"name": "gru4rec", "datasets": ["synthetic"],
                     "params": {"dim": 16, "hidden": 16, "epochs": 2, "max_len": 20}},
                    {"name": "bpr_mf", "datasets": ["topk"], "params": {"dim": 8, "epochs": 2}}],
        "metrics": ["ndcg@10", "recall@20"]})
    suite, cells = load_suite(path, registry)
    assert [c.method.name for c in cells] == ["sasrec", "gru4rec", "bpr_mf"]
    runs = []
    for _ in range(2):
        out = []
        for cell in cells:
            ds = prepare_dataset(cell.dataset, cell.task, registry)
            metrics, result, _ = run_cell(cell, ds, registry)
            out.append((metrics["ndcg@10"], metrics["recall@20"], metrics["best_epoch"]))
        runs.append(out)
    assert runs[0] == runs[1]
    assert all(0 <= v[0] <= 1 for v in runs[0])


def test_method_datasets_filter_rejects_unknown_dataset(registry):
    from harness.suite import SuiteError, validate_suite

    raw = {"suite": "s", "datasets": [{"name": "synthetic"}],
           "methods": [{"name": "bpr_mf", "datasets": ["syntetic"]}]}
    with pytest.raises(SuiteError, match="'syntetic' is not one of the suite's datasets"):
        validate_suite(raw, registry)


def test_sequential_scores_do_not_depend_on_chunking(seq_dataset):
    """Ranking chunks and the scorer's encoding sub-chunks change speed, not results."""
    from harness.scoring import SequenceScorer, full_ranking_topk

    torch.manual_seed(0)
    model = SASRec(seq_dataset.n_items, dim=16, max_len=8, n_layers=2, n_heads=2, inner=32).eval()
    users = np.arange(seq_dataset.n_users)
    exclude = seq_dataset.exclusion_matrix("test")
    outs = []
    for chunk, enc in ((1000, 1000), (7, 3), (1, 1), (1000, 4)):
        scorer = SequenceScorer(model, seq_dataset, "test", encode_chunk=enc)
        with torch.no_grad():
            outs.append(full_ranking_topk(scorer, users, exclude, 5, chunk_size=chunk))
    for items, valid in outs[1:]:
        assert torch.equal(items, outs[0][0]) and torch.equal(valid, outs[0][1])


def test_sasrec_last_hidden_equals_the_last_position_of_encode():
    torch.manual_seed(0)
    model = SASRec(30, dim=16, max_len=8, n_layers=2, n_heads=2, inner=32).eval()
    tokens = torch.randint(1, 31, (6, 8))
    tokens[0, :5] = 0   # left padding of different lengths
    tokens[1, :7] = 0
    with torch.no_grad():
        full = model.encode(tokens)[:, -1]
        fast = model.last_hidden(tokens)
        inputs = model.embed(tokens) * 1.5   # the TTA route: edited input representations
        assert torch.allclose(model.encode(tokens, inputs)[:, -1], model.last_hidden(tokens, inputs),
                              atol=1e-5)
    assert torch.allclose(full, fast, atol=1e-5)


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_padding_trimmed_windows_give_the_untrimmed_scores(cls, seq_dataset):
    """Cutting each history's window to its length (rounded up to a bucket) must not change
    a user's scores (up to float rounding), whichever users share a chunk."""
    from harness.scoring import SequenceScorer

    torch.manual_seed(0)
    model = cls(seq_dataset.n_items, dim=16, max_len=40).eval()
    users = torch.arange(seq_dataset.n_users)
    trimmed = SequenceScorer(model, seq_dataset, "test", encode_chunk=4, bucket=5)
    assert len(set(trimmed.width.tolist())) > 1 and trimmed.width.max() <= 40  # it does trim
    full = SequenceScorer(model, seq_dataset, "test", encode_chunk=1000)
    full.width[:] = trimmed.tokens.shape[1]
    with torch.no_grad():
        a, b = trimmed.score(users), full.score(users)
        c = torch.cat([trimmed.score(users[i:i + 3]) for i in range(0, len(users), 3)])
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, c, atol=1e-6)
