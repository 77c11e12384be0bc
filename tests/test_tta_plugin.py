"""TTA4SR wrapper: aggregation, identities with no-TTA, frozen weights, no target leakage,
chunk-size independence, validation errors, and the backbone cache end to end."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

import plugins.baselines
import plugins.tta4sr
from harness.blocks.sequence import GRU4Rec, SASRec, history_tokens
from harness.context import Context
from harness.data.dataset import Dataset
from harness.data.splits import leave_one_out
from harness.data.synthetic import generate
from harness.registry import Registry
from plugins.tta4sr.params import OPERATORS, TTAParams
from plugins.tta4sr.wrapper import PartScorer, TTAModel, aggregate, view_scores

ALL_OPS = [op for op in OPERATORS if op != "none"]
FAST = {"m": 3, "n_in": 2, "n_out": 2}


@pytest.fixture(scope="module")
def reg() -> Registry:
    r = Registry(autoload=False)
    r.register(plugins.baselines, name="baselines")
    r.register(plugins.tta4sr, name="tta4sr")
    return r


def make_dataset(seed: int = 0) -> Dataset:
    data = generate(n_users=40, n_items=30, n_interactions=900, seed=seed)
    return Dataset("syn", "sequential", data, *leave_one_out(data), f"s{seed}")


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return make_dataset()


def plain_scores(model, ds, L=12):
    with torch.no_grad():   # as the harness scores (SASRec's eval fast path differs in ulps)
        return model.score_sequences(history_tokens(ds, "test", L))


def backbone(cls, n_items: int, max_len: int = 12):
    torch.manual_seed(0)
    return cls(n_items, dim=8, max_len=max_len).eval()


def scorer(model, ds, reg, part="test", **params) -> PartScorer:
    p = TTAParams(backbone="sasrec" if isinstance(model, SASRec) else "gru4rec", **params)
    ctx = Context(registry=reg, seed=0, metrics=["ndcg@10"], valid_metric="ndcg@10",
                  device=torch.device("cpu"))
    return PartScorer(TTAModel(model, p, seed=0), ds, part, ctx)


def users(ds) -> torch.Tensor:
    return torch.arange(ds.n_users)


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_identity_settings_reproduce_the_plain_scores(cls, ds, reg):
    model = backbone(cls, ds.n_items)
    plain = plain_scores(model, ds)
    assert torch.equal(scorer(model, ds, reg, operator="none").score(users(ds)), plain)
    # σ = 0 with one copy: the full history truncated afterwards is the plain input
    same = scorer(model, ds, reg, operator="tmask_r", ratio=0.0, m=1).score(users(ds))
    assert torch.allclose(same, plain, atol=1e-6)
    zero = scorer(model, ds, reg, operator="tnoise", noise=(0, 0), n_in=2, n_out=2)
    assert torch.allclose(zero.score(users(ds)), plain, atol=1e-5)


@pytest.mark.parametrize("op", ["tmask_r", "mask", "tnoise", "substitute"])
def test_aggregation_is_the_mean_of_the_view_scores(op, ds, reg):
    model = backbone(SASRec, ds.n_items)
    for include in (False, True):
        sc = scorer(model, ds, reg, operator=op, include_original=include, **FAST)
        u = users(ds)
        views = sc.augment(u.numpy())
        with torch.no_grad():
            per_view, passes = view_scores(model, views)
        assert len(per_view) == (4 if op == "tnoise" else 3)
        assert passes == (3 if op == "tnoise" else 3)   # tnoise: 2 noisy inputs + 1 shared
        expected = torch.stack(per_view).mean(0)
        if include:
            plain = plain_scores(model, ds)
            expected = (torch.stack(per_view).sum(0) + plain) / (len(per_view) + 1)
        assert torch.allclose(sc.score(u), expected, atol=1e-6)
        assert sc.timing["tta_encoder_passes"] == (passes + include) * ds.n_users
    with pytest.raises(ValueError, match="nothing to aggregate"):
        aggregate([])


@pytest.mark.parametrize("op", ALL_OPS)
def test_tta_leaves_the_backbone_untouched(op, ds, reg):
    cls = GRU4Rec if op == "insert" else SASRec
    model = backbone(cls, ds.n_items)
    before = copy.deepcopy(model.state_dict())
    out = scorer(model, ds, reg, operator=op, **FAST).score(users(ds))
    assert out.shape == (ds.n_users, ds.n_items) and torch.isfinite(out).all()
    assert not model.training
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("op", ALL_OPS)
def test_augmentation_never_sees_the_target(op, ds, reg):
    """Changing every test target leaves the augmented test inputs unchanged; the
    histories are train+valid events only."""
    model = backbone(SASRec, ds.n_items)
    item2 = ds.data.item.copy()
    item2[ds.test_idx] = (item2[ds.test_idx] + 1) % ds.n_items
    data2 = replace(ds.data, item=item2)
    ds2 = Dataset("syn", "sequential", data2, ds.train_idx, ds.valid_idx, ds.test_idx, "s0b")
    params = dict(operator=op, similarity="cooccurrence", **FAST)
    a = scorer(model, ds, reg, **params)
    b = scorer(model, ds2, reg, **params)
    for row, seq in enumerate(a.sequences):
        n_known = int(((ds.data.user[np.r_[ds.train_idx, ds.valid_idx]]) == row).sum())
        assert len(seq) == n_known
    va, vb = a.augment(np.arange(ds.n_users)), b.augment(np.arange(ds.n_users))
    for x, y in zip(va, vb):
        assert torch.equal(x.tokens, y.tokens)
        if x.inputs is not None:
            assert torch.equal(x.inputs, y.inputs)


def test_blocked_positions_do_not_reach_the_sasrec_prediction():
    model = backbone(SASRec, 30, max_len=8)
    tokens = torch.tensor([[0, 0, 3, 0, 5, 0, 7, 9]])
    emb = model.embed(tokens)
    noisy = emb.clone()
    noisy[0, [3, 5]] += torch.randn(2, 8) * 5      # blocked (id 0) positions inside the window
    assert torch.allclose(model.last_hidden(tokens, emb), model.last_hidden(tokens, noisy), atol=1e-6)


def test_tmask_b_differs_from_tmask_r_but_blocks_the_same_items(ds, reg):
    model = backbone(SASRec, ds.n_items)
    b = scorer(model, ds, reg, operator="tmask_b", ratio=0.5, m=2)
    r = scorer(model, ds, reg, operator="tmask_r", ratio=0.5, m=2)
    vb, vr = b.augment(np.arange(5)), r.augment(np.arange(5))
    for x, y in zip(vb, vr):   # same RNG draws: the same items survive, tmask_b's blocked
        for row in range(5):   # slots still take window room, so it sees a suffix of tmask_r's
            kb, kr = x.tokens[row][x.tokens[row] > 0], y.tokens[row][y.tokens[row] > 0]
            assert 0 < len(kb) <= len(kr) and torch.equal(kr[len(kr) - len(kb):], kb)
    assert not torch.allclose(b.score(users(ds)), r.score(users(ds)))


def test_scores_do_not_depend_on_the_chunk_size(ds, reg):
    model = TTAModel(backbone(SASRec, ds.n_items), TTAParams(operator="tmask_r", m=3), seed=0)
    tops = []
    for chunk in (7, 1024):
        ctx = Context(registry=reg, seed=0, metrics=["ndcg@10"], valid_metric="ndcg@10",
                      device=torch.device("cpu"), eval_chunk_size=chunk)
        tops.append(ctx.score(model, ds, "test", ["ndcg@10"]).topk[1])
    assert torch.equal(tops[0], tops[1])


def suite(methods, seeds=(0,)):
    return {"suite": "tta-test", "seeds": list(seeds), "metrics": ["ndcg@10", "hit_rate@10"],
            "datasets": [{"name": "synthetic", "task": "sequential",
                          "params": {"n_users": 40, "n_items": 30, "n_interactions": 900},
                          "split": {"strategy": "leave_one_out"}}],
            "methods": methods}


@pytest.mark.parametrize("params,error", [
    ({"backbone": "gru4rec", "operator": "tmask_b"}, "no attention; use tmask_r"),
    ({"backbone_params": {"dimm": 8}}, "backbone_params.dimm"),
    ({"operator": "tnoise", "noise": [1.0, 0.5]}, "needs b <= a"),
    ({"operator": "tnoise", "n_in": 0, "n_out": 0}, "n_in \\+ n_out >= 1"),
    ({"operator": "cutout"}, "operator"),
    ({"ratio": 1.5}, "ratio"),
])
def test_bad_params_fail_at_validate_time(params, error, reg):
    from harness.suite import SuiteError, validate_suite

    with pytest.raises(SuiteError, match=error):
        validate_suite(suite([{"name": "tta4sr", "params": params}]), reg)


def test_cells_share_one_cached_backbone_equal_to_the_zoo_model(reg, workdir):
    from harness.runner import prepare_dataset, run_cell
    from harness.suite import validate_suite

    bp = {"dim": 8, "max_len": 12, "epochs": 2, "batch_size": 32}
    _, cells = validate_suite(suite([
        {"name": "sasrec", "params": bp},
        {"name": "tta4sr", "label": "none", "params": {"backbone_params": bp}},
        {"name": "tta4sr", "label": "tmask_r", "params": {"backbone_params": bp,
                                                          "operator": "tmask_r", "m": 3}},
    ]), reg)
    ds = prepare_dataset(cells[0].dataset, cells[0].task, reg, workdir)
    out = [run_cell(c, ds, reg, cache_dir=workdir)[0] for c in cells]
    zoo, none, tmask = out
    assert none["backbone_cached"] == 0.0 and tmask["backbone_cached"] == 1.0
    assert none["ndcg@10"] == zoo["ndcg@10"] and none["hit_rate@10"] == zoo["hit_rate@10"]
    assert none["best_epoch"] == tmask["best_epoch"] == zoo["best_epoch"]
    assert tmask["tta_passes_per_user"] == 3 and none["tta_passes_per_user"] == 1
    assert none["tta_overhead_ratio"] == pytest.approx(1.0)
    assert tmask["tta_seconds"] > 0 and tmask["tta_overhead_ratio"] > 0
    assert sum(v for k, v in tmask.items() if k.startswith("bucket_") and k.endswith("_users")) == 40
    # same seed, same numbers (the cached backbone is reused; TTA draws are seeded)
    assert run_cell(cells[2], ds, reg, cache_dir=workdir)[0]["ndcg@10"] == tmask["ndcg@10"]


def test_backbone_seed_shares_one_backbone_across_tta_seeds(reg, workdir):
    from harness.runner import prepare_dataset, run_cell
    from harness.suite import validate_suite

    bp = {"dim": 8, "max_len": 12, "epochs": 1, "batch_size": 64}
    params = {"backbone": "gru4rec", "backbone_params": bp, "backbone_seed": 0}
    _, cells = validate_suite(suite([
        {"name": "tta4sr", "label": "none", "params": params},
        {"name": "tta4sr", "label": "crop", "params": {**params, "operator": "crop", "m": 2}},
    ], seeds=(0, 1)), reg)
    ds = prepare_dataset(cells[0].dataset, cells[0].task, reg, workdir)
    out = {(c.method.key, c.seed): run_cell(c, ds, reg, cache_dir=workdir)[0] for c in cells}
    assert [v["backbone_cached"] for v in out.values()] == [0.0, 1.0, 1.0, 1.0]   # run order
    assert out[("none", 0)]["ndcg@10"] == out[("none", 1)]["ndcg@10"]   # same weights
    assert len([p for p in (workdir / "tta4sr").iterdir() if not p.name.startswith(".")]) == 1
