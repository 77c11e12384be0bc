"""CausalDiffRec on tiny data: forward/backward of every module, the sound pipeline, and
each official-code behaviour reproduced by its flag."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data.dataset import Dataset
from harness.data.ood import popularity_shift
from harness.data.synthetic import generate
from plugins.causaldiffrec import CausalDiffRecParams
from plugins.causaldiffrec.modules import (EnvironmentGenerator, GCNPropagation, Representation,
                                           dense_adjacency, gcn_normalize)
from plugins.causaldiffrec.train import UnmaskedScorer, node_features

TINY = dict(dim=8, feat_dim=16, steps=10, rep_epochs=1, outer_steps=2, head_epochs=2,
            batch_size=256, importance_history=2)
CODE = dict(noise_level=0.8, symmetrize_edges=False, lr=0.1, env_condition="decoder_on_z",
            loss_args="code", env_recon_target="logstd", sampling_dropout=True,
            head="per_epoch_fresh", reg_weight=1e-3, score_with="untrained_head",
            eval_graph="test", mask_train_items=False, select_on="test")


@pytest.fixture(scope="module")
def dataset():
    data = generate(n_users=40, n_items=50, n_interactions=700, seed=2)
    train, valid, test, _ = popularity_shift(data, seed=1)
    return Dataset("tiny", "topk", data, train, valid, test, "tiny")


@pytest.fixture
def ctx(registry, tmp_path):
    from harness.context import Context

    return Context(registry=registry, seed=0, metrics=["ndcg@10"], valid_metric="ndcg@10",
                   device=torch.device("cpu"), workdir=tmp_path, cache_dir=tmp_path)


def _rep(dataset, **kw):
    torch.manual_seed(0)
    p = CausalDiffRecParams(**{**TINY, **kw})
    n = dataset.n_users + dataset.n_items
    rep = Representation(p, dataset.n_users, dataset.n_items, node_features(n, p.feat_dim, 0))
    coo = dataset.train_matrix.tocoo()
    a = dense_adjacency(dataset.n_users, dataset.n_items, coo.row, coo.col, p.symmetrize_edges)
    return p, rep, a


def test_gcn_normalize_of_directed_graph_leaves_users_with_their_self_loop_only():
    a = dense_adjacency(2, 2, np.array([0, 1]), np.array([0, 1]), symmetric=False)
    prop = gcn_normalize(a)
    assert prop[0].nonzero().ravel().tolist() == [0]  # user 0 aggregates only itself
    assert set(prop[2].nonzero().ravel().tolist()) == {0, 2}  # item 0 hears user 0
    sym = gcn_normalize(dense_adjacency(2, 2, np.array([0, 1]), np.array([0, 1]), symmetric=True))
    assert torch.allclose(sym, sym.T)


def test_generator_toggles_exactly_s_entries_per_node_and_reports_log_prob():
    torch.manual_seed(0)
    gen = EnvironmentGenerator(n_nodes=12, n_envs=2, edits=3, noise_level=0.0, symmetric=False)
    a = (torch.rand(12, 12) < 0.3).float()
    edited, edits = gen(a, 0)
    assert ((edited != a).sum(0) == 3).all()  # column v: the s sources toggled for target v
    changed = (edited != a).T.nonzero()[:, 1].view(12, 3)
    assert torch.equal(changed.sort(1).values, edits.picked.sort(1).values)
    assert edits.log_prob < 0 and edits.k == 0
    sym = EnvironmentGenerator(12, 2, 3, noise_level=0.3, symmetric=True)
    a_sym = ((a + a.T) > 0).float()
    e2, _ = sym(a_sym, 1)
    assert torch.equal(e2, e2.T)


def test_edits_are_distinct_and_follow_the_without_replacement_law():
    """Successive sampling (draws in order, repeats skipped) has torch's
    without-replacement law: compare how often each ordered pair comes first."""
    torch.manual_seed(0)
    gen = EnvironmentGenerator(n_nodes=4, n_envs=1, edits=2, noise_level=0.0, symmetric=False)
    probs = torch.tensor([[0.6, 0.25, 0.1, 0.05]]).repeat(20000, 1)
    gen.n = len(probs)
    ours = gen.sample_edits(probs)
    assert (ours[:, 0] != ours[:, 1]).all()
    reference = torch.multinomial(probs, 2, replacement=False)
    freq = lambda x: torch.bincount(x[:, 0] * 4 + x[:, 1], minlength=16).float() / len(x)  # noqa: E731
    assert torch.allclose(freq(ours), freq(reference), atol=0.015)
    # the pair (0, 1) has probability 0.6 * 0.25 / 0.4 = 0.375
    assert abs(float(freq(ours)[1]) - 0.375) < 0.015


def test_reinforce_gradient_is_the_autograd_gradient_of_minus_reward_log_p():
    torch.manual_seed(0)
    gen = EnvironmentGenerator(n_nodes=10, n_envs=2, edits=3, noise_level=0.1, symmetric=True)
    a = (torch.rand(10, 10) < 0.3).float()
    a = ((a + a.T) > 0).float()
    edits = [gen(a, k)[1] for k in range(2)]
    reward = 0.37
    gen.reinforce(edits, reward)
    ours = gen.logits.grad.clone()
    logits = gen.logits.detach().clone().requires_grad_(True)
    log_p = sum(logits[e.k].gather(1, e.picked).sum() - 3 * torch.logsumexp(logits[e.k], 1).sum()
                for e in edits)
    (-reward * log_p).backward()
    assert torch.allclose(ours, logits.grad, atol=1e-6)
    plain = logits.detach()
    assert all(abs(e.log_prob - float(plain[e.k].gather(1, e.picked).sum()
                                      - 3 * torch.logsumexp(plain[e.k], 1).sum())) < 1e-4
               for e in edits)


def test_noise_overwrites_about_the_noise_level_of_entries_symmetrically():
    torch.manual_seed(0)
    n = 300
    gen = EnvironmentGenerator(n_nodes=n, n_envs=1, edits=0, noise_level=0.1, symmetric=True)
    ones = torch.ones(n, n)
    noisy = gen.noise(ones)
    assert torch.equal(noisy, noisy.T)
    flipped = float((noisy == 0).float().mean())  # overwritten by a fair coin: half become 0
    assert abs(flipped - 0.05) < 0.005
    directed = EnvironmentGenerator(n_nodes=n, n_envs=1, edits=0, noise_level=0.1, symmetric=False)
    assert abs(float((directed.noise(ones) == 0).float().mean()) - 0.05) < 0.005
    assert not torch.equal(gen.noise(ones), gen.noise(ones))  # fresh noise every call


def test_gcn_propagation_equals_the_dense_normalised_matrix():
    torch.manual_seed(0)
    a = (torch.rand(15, 15) < 0.3).float()
    x = torch.randn(15, 4)
    assert torch.allclose(GCNPropagation(a) @ x, gcn_normalize(a) @ x, atol=1e-6)


def test_sound_outer_step_trains_every_module_and_reinforce_moves_the_generator(dataset):
    p, rep, a = _rep(dataset)
    before = {n: t.detach().clone() for n, t in rep.named_parameters()}
    stats = rep.outer_step(a)
    assert all(np.isfinite(v) for v in stats.values()) and stats["risk_var"] > 0
    changed = {n for n, t in rep.named_parameters() if not torch.equal(before[n], t)}
    for prefix in ("vgae.", "denoiser.", "env.mu.", "env.logstd.", "env.dec.", "env.prior_mu",
                   "generator.logits"):
        assert any(n.startswith(prefix) for n in changed), prefix


def test_code_loss_args_drop_l_env_so_the_env_encoder_gets_no_gradient(dataset):
    p, rep, a = _rep(dataset, loss_args="code", env_condition="decoder_on_z")
    before = {n: t.detach().clone() for n, t in rep.named_parameters()}
    rep.outer_step(a)
    same = lambda n: torch.equal(before[n], dict(rep.named_parameters())[n])  # noqa: E731
    assert same("env.mu.weight") and same("env.logstd.weight") and same("env.prior_mu")
    assert not same("env.dec.weight")  # e = dec(ReLU(z)) is trained through the denoiser
    assert not same("vgae.w0.weight")


def test_zero_condition_mode_feeds_zeros(dataset):
    p, rep, a = _rep(dataset, env_condition="none", n_envs=1)
    cond, _ = rep.env(torch.randn(5, p.dim), "none", "z")
    assert torch.equal(cond, torch.zeros(5, p.dim))
    assert rep.outer_step(a)["risk_var"] == 0.0


def test_no_environment_ablation_removes_generator_and_environment_inference(dataset, monkeypatch):
    """environment: false has no generator and no EVAE (no parameters of either), trains on
    the clean train graph only, and its risk is 0.1·(L_diff + L_vgae) with e ≡ 0."""
    p, rep, a = _rep(dataset, environment=False)
    assert rep.generator is None and rep.env is None and rep.n_envs == 1
    names = [n for n, _ in rep.named_parameters()]
    assert not any(n.startswith(("generator.", "env.")) for n in names)
    seen = []
    real = rep.env_risk
    monkeypatch.setattr(rep, "env_risk", lambda g: (seen.append(g), real(g))[1])
    before = {n: t.detach().clone() for n, t in rep.named_parameters()}
    stats = rep.outer_step(a)
    assert len(seen) == 1 and seen[0] is a  # the train graph itself, unedited
    assert stats["risk_var"] == 0.0
    changed = {n for n, t in rep.named_parameters() if not torch.equal(before[n], t)}
    assert any(n.startswith("vgae.") for n in changed) and any(n.startswith("denoiser.") for n in changed)
    z = torch.randn(7, p.dim)
    cond, l_env = rep.condition(z)
    assert torch.equal(cond, torch.zeros_like(z)) and l_env is None
    out = real(a)
    assert torch.allclose(out["risk"], 0.1 * (out["diff"] + out["vgae"]))
    # the full model conditions on e and adds L_env
    _, full, _ = _rep(dataset)
    assert full.generator is not None and full.env is not None and full.n_envs == 3


@pytest.mark.parametrize("head", ["persistent", "per_epoch_fresh"])
def test_representation_update_count_reaches_the_configured_number(dataset, ctx, head):
    from harness.context import seed_everything
    from plugins.causaldiffrec.train import train

    seed_everything(0)
    params = {**TINY, "rep_epochs": 3, "outer_steps": 2, "head": head}
    trained = train(CausalDiffRecParams(**params), dataset, ctx)
    assert trained.history["representation_updates"] == 6


def test_inference_is_deterministic_unless_code_sampling_dropout(dataset):
    p, rep, a = _rep(dataset)
    torch.manual_seed(1); z1 = rep.infer(a)
    torch.manual_seed(1); z2 = rep.infer(a)
    assert torch.equal(z1, z2) and z1.shape == (dataset.n_users + dataset.n_items, p.dim)
    assert z1.abs().max() <= 1.0 + 1e-6
    _, rep_code, a_code = _rep(dataset, sampling_dropout=True)
    torch.manual_seed(1); c1 = rep_code.infer(a_code)
    torch.manual_seed(2); c2 = rep_code.infer(a_code)
    assert not torch.equal(c1, c2)
    assert rep_code.denoiser.training  # the official code never switches to eval mode


def test_sound_pipeline_returns_the_trained_head_and_is_reproducible(dataset, ctx, registry):
    from harness.blocks.graph import LightGCN
    from harness.context import seed_everything
    from plugins.causaldiffrec.train import train

    seed_everything(0)
    trained = train(CausalDiffRecParams(**TINY), dataset, ctx)
    model = trained.model
    assert isinstance(model, LightGCN)  # the BPR-trained head scores
    m1 = ctx.score(model, dataset, "test", ["ndcg@10"]).metrics["ndcg@10"]
    seed_everything(0)
    again = train(CausalDiffRecParams(**TINY), dataset, ctx.child()).model  # fresh streams
    assert ctx.score(again, dataset, "test", ["ndcg@10"]).metrics["ndcg@10"] == m1
    assert trained.history["best_epoch"] >= 0 and trained.history["representation_seconds"] > 0


def test_code_faithful_flags_rank_training_items_and_use_the_test_graph(dataset, ctx):
    from harness.context import seed_everything
    from plugins.causaldiffrec.train import train

    seed_everything(0)
    model = train(CausalDiffRecParams(**TINY, **CODE), dataset, ctx).model
    assert isinstance(model, UnmaskedScorer) and not model.mask_train_items
    result = ctx.score(model, dataset, "test", ["ndcg@10"])
    users, items, _ = result.topk
    train_m = dataset.train_matrix
    in_train = sum(train_m[u, i] for u, row in zip(users, items.tolist()) for i in row)
    assert in_train > 0  # the official evaluation recommends already-seen items
    # the same flags with masking on never recommend a training item
    seed_everything(0)
    masked = train(CausalDiffRecParams(**TINY, **{**CODE, "mask_train_items": True}), dataset,
                   ctx).model
    users, items, _ = ctx.score(masked, dataset, "test", ["ndcg@10"]).topk
    assert sum(train_m[u, i] for u, row in zip(users, items.tolist()) for i in row) == 0


def test_selection_on_test_reads_test_and_on_valid_never_does(dataset, ctx, monkeypatch):
    from harness.context import seed_everything
    from plugins.causaldiffrec.train import train

    parts = []
    real = ctx.score
    monkeypatch.setattr(ctx, "score", lambda m, d, part, metrics: (parts.append(part), real(m, d, part, metrics))[1])
    seed_everything(0)
    train(CausalDiffRecParams(**TINY), dataset, ctx)
    assert parts and set(parts) == {"valid"}
    parts.clear()
    train(CausalDiffRecParams(**TINY, select_on="test"), dataset, ctx)
    assert "test" in parts


def test_unknown_param_is_rejected():
    with pytest.raises(Exception, match="noise_levle"):
        CausalDiffRecParams(noise_levle=0.1)
