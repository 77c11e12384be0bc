"""Evidence-grade comparisons: tests over training runs, the under-training flag, optimiser
step counts, per-group baselines, and the EASE^R / ItemKNN baselines."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from typer.testing import CliRunner

from harness.api import still_improving
from harness.significance import (MIN_SEEDS, compare_runs, hierarchical_bootstrap,
                                  seed_paired_test)
from harness.training import count_optimizer_steps, fit

cli = CliRunner()


def _runs(effects: list[float], n_users: int = 200, noise: float = 0.02, seed: int = 0):
    """Per-seed per-user values of a baseline and a treatment whose per-seed shift is
    ``effects[s]`` (users share noise within a seed, as a training run does)."""
    rng = np.random.default_rng(seed)
    base, treat = {}, {}
    for s, effect in enumerate(effects):
        b = rng.uniform(0.1, 0.5, n_users)
        base[str(s)] = {f"u{u}": float(v) for u, v in enumerate(b)}
        t = b + effect + rng.normal(0, noise, n_users)
        treat[str(s)] = {f"u{u}": float(v) for u, v in enumerate(t)}
    return base, treat


def _means(runs):
    return {s: float(np.mean(list(v.values()))) for s, v in runs.items()}


def test_seed_level_tests_are_not_fooled_by_one_lucky_training_run():
    # one of three seeds carries the whole effect: large p over seeds...
    base, treat = _runs([0.10, 0.0, 0.0])
    assert seed_paired_test(_means(base), _means(treat)) > 0.2
    assert hierarchical_bootstrap(base, treat, n_boot=4000) > 0.2
    # ...while the per-user test over seed-averaged scores calls it highly significant
    per_seed = {"a": {"m": base}, "b": {"m": treat}}
    users = compare_runs(per_seed, {"b": "a"}, ["m"], unit="users")[0]
    assert users.p_value < 1e-6
    # every seed agrees: small p for both seed-level tests
    base, treat = _runs([0.03, 0.031, 0.029])
    assert seed_paired_test(_means(base), _means(treat)) < 0.01
    assert hierarchical_bootstrap(base, treat, n_boot=4000) < 0.01


def test_fewer_than_three_seeds_get_no_p_value_and_no_mark():
    base, treat = _runs([0.05, 0.05])
    assert MIN_SEEDS == 3
    assert math.isnan(seed_paired_test(_means(base), _means(treat)))
    [c] = compare_runs({"a": {"m": base}, "b": {"m": treat}}, {"b": "a"}, ["m"])
    assert math.isnan(c.p_value) and math.isnan(c.p_holm) and not c.significant(0.05)
    assert c.n_seeds == 2


def test_per_group_baselines_and_one_holm_family_per_metric():
    base, treat = _runs([0.03, 0.031, 0.029])
    other, _ = _runs([0.0, 0.0, 0.0], seed=1)
    per_seed = {"sasrec": {"m": base}, "sasrec+x": {"m": treat},
                "gru4rec": {"m": other}, "gru4rec+x": {"m": other}}
    out = compare_runs(per_seed, {"sasrec+x": "sasrec", "gru4rec+x": "gru4rec"}, ["m"])
    by = {c.method: c for c in out}
    assert by["sasrec+x"].baseline == "sasrec" and by["gru4rec+x"].baseline == "gru4rec"
    assert by["gru4rec+x"].p_value == 1.0  # identical runs
    # Holm over the two comparisons: the smaller p is doubled
    assert by["sasrec+x"].p_holm == pytest.approx(min(1.0, 2 * by["sasrec+x"].p_value))


class _Curve:
    """A stand-in for Context whose validation values follow a fixed curve."""

    valid_metric = "ndcg@10"

    def __init__(self, values):
        self.values = list(values)
        self.epoch = 0

    def log_metrics(self, *_a, **_k):
        pass

    def report(self, *_a, **_k):
        pass

    def validate(self, model, dataset):
        value = self.values[self.epoch]
        self.epoch += 1
        return value


def _fit(curve, epochs, patience=3):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)

    def epoch(_: int) -> float:
        opt.step()  # fit refuses a run without a single optimiser step
        return 0.0

    return fit(model, epoch, None, _Curve(curve), epochs=epochs, patience=patience)


def test_under_training_flag_fires_on_a_rising_curve_and_not_on_a_plateau():
    rising = _fit([0.1 * i for i in range(10)], epochs=10)
    assert rising["best_epoch"] == 9 and rising["still_improving"] == 1.0
    assert rising["epoch_budget"] == 10 and rising["patience"] == 3
    plateau = _fit([0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3], epochs=10)
    assert plateau["best_epoch"] == 2 and plateau["epochs_run"] == 6  # stopped early
    assert plateau["still_improving"] == 0.0
    # best inside the last `patience` evaluations of a full budget: flagged
    late = _fit([0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.6, 0.5, 0.5, 0.5], epochs=10, patience=4)
    assert late["best_epoch"] == 6 and late["epochs_run"] == 10 and late["still_improving"] == 1.0
    # evaluations at epochs 1, 3, ..., 49: the last five are 41..49
    assert still_improving(best_epoch=41, epoch_budget=50, patience=5, eval_every=2)
    assert not still_improving(best_epoch=39, epoch_budget=50, patience=5, eval_every=2)
    assert still_improving(best_epoch=45, epoch_budget=50, patience=5)
    assert not still_improving(best_epoch=44, epoch_budget=50, patience=5)


def test_optimizer_steps_are_counted_for_any_torch_optimiser():
    p = torch.nn.Parameter(torch.ones(2))
    opts = [torch.optim.SGD([p], lr=0.1), torch.optim.Adam([p], lr=0.1)]
    with count_optimizer_steps() as steps:
        for opt in opts:
            for _ in range(3):
                opt.zero_grad()
                p.sum().backward()
                opt.step()
    assert steps[0] == 6
    opts[0].step()  # outside the block: not counted, hook removed
    assert steps[0] == 6


def test_ease_equals_the_per_item_constrained_ridge_solution():
    from plugins.baselines.neighbourhood import ease_weights

    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((30, 6)) < 0.4).astype(np.float64))
    lam = 2.0
    b = ease_weights(x, lam)
    dense = x.toarray()
    assert np.allclose(np.diag(b), 0.0)
    for j in range(6):  # item j regressed on every other item, ridge lambda
        others = [i for i in range(6) if i != j]
        xo = dense[:, others]
        w = np.linalg.solve(xo.T @ xo + lam * np.eye(5), xo.T @ dense[:, j])
        assert np.allclose(b[others, j], w, atol=1e-8)


def test_itemknn_keeps_k_cosine_neighbours_per_item():
    from plugins.baselines.neighbourhood import itemknn_weights

    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1]], float))
    full = itemknn_weights(x, k=10, shrink=0.0)
    cols = x.toarray()
    cos = lambda i, j: cols[:, i] @ cols[:, j] / np.sqrt(cols[:, i].sum() * cols[:, j].sum())  # noqa: E731
    assert full[0, 1] == pytest.approx(cos(0, 1)) and np.allclose(np.diag(full), 0)
    top1 = itemknn_weights(x, k=1, shrink=0.0)
    assert ((top1 > 0).sum(axis=0) <= 1).all()
    for j in range(4):
        assert top1[:, j].max() == pytest.approx(full[:, j].max())


def _write(tmp_path, methods):
    suite = {
        "suite": "evidence",
        "datasets": [{"name": "synthetic", "params": {"n_users": 60, "n_items": 80,
                                                      "n_interactions": 1200, "seed": 1}}],
        "methods": methods, "seeds": [0], "metrics": ["ndcg@10"],
        "tracking": {"uri": "sqlite:///mlflow.db"},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_ease_itemknn_and_budget_fields_end_to_end(tmp_path, monkeypatch):
    import mlflow

    from harness.cli import app
    from harness.tracking import absolute_uri

    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, [{"name": "ease", "params": {"lambda": 50.0}},
                             {"name": "itemknn", "params": {"k": 20}},
                             {"name": "bpr_mf", "params": {"dim": 8, "epochs": 4, "patience": 2,
                                                           "batch_size": 256}}])
    out = cli.invoke(app, ["run", str(path), "-q"])
    assert out.exit_code == 0, out.output
    uri = absolute_uri("sqlite:///mlflow.db")
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("evidence")
    runs = {r.data.tags["bench.method"]: r.data
            for r in client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'cell'")}
    assert runs["ease"].metrics["ndcg_at_10"] > 0 and runs["itemknn"].metrics["ndcg_at_10"] > 0
    assert runs["ease"].metrics["optimizer_steps"] == 0  # closed form
    bpr = runs["bpr_mf"].metrics
    # one Adam step per batch of 256 training pairs, every epoch run
    run_id = [r for r in client.search_runs([exp.experiment_id], "tags.`bench.method` = 'bpr_mf'")][0]
    n_train = mlflow.artifacts.load_dict(f"runs:/{run_id.info.run_id}/split_diagnostics.json")["n_train"]
    assert bpr["optimizer_steps"] == bpr["epochs_run"] * math.ceil(n_train / 256)
    assert bpr["epoch_budget"] == 4 and bpr["patience"] == 2 and "still_improving" in bpr


def test_run_summary_marks_a_cell_stopped_while_still_improving(tmp_path, monkeypatch):
    from harness.cli import app

    monkeypatch.chdir(tmp_path)
    # 2 epochs with patience 5: the best epoch is necessarily inside the last 5 evaluations
    path = _write(tmp_path, [{"name": "pop"},
                             {"name": "bpr_mf", "params": {"dim": 8, "epochs": 2, "patience": 5,
                                                           "batch_size": 256}}])
    out = cli.invoke(app, ["run", str(path), "-q"])
    assert out.exit_code == 0, out.output
    flat = " ".join(out.stdout.split())  # the table may wrap on a narrow terminal
    assert flat.count("still improving (") == 1  # bpr_mf's row only; pop trains nothing
    assert "still improving (1/1)" in flat or "still improving (1/1)" in out.stdout
    assert "raise `epochs`" in out.output


def test_per_method_baseline_is_validated_and_resolved(tmp_path):
    from harness.registry import Registry
    from harness.suite import SuiteError, validate_suite

    raw = yaml.safe_load(_write(tmp_path, [
        {"name": "pop"}, {"name": "ease", "label": "ease-a"},
        {"name": "ease", "label": "ease-b", "baseline": "ease-a"}]).read_text())
    raw["baseline"] = "pop"
    suite, _ = validate_suite(raw, Registry())
    assert suite.baseline_of() == {"ease-a": "pop", "ease-b": "ease-a"}
    raw["methods"][2]["baseline"] = "ease-c"
    with pytest.raises(SuiteError, match=r"methods\[2\]\.baseline: 'ease-c' is not one of"):
        validate_suite(raw, Registry())


def test_hinge_ranking_loss_for_pairwise_baselines():
    from harness.blocks.mf import MF
    from harness.blocks.pairwise import bpr_loss, ranking_loss

    pos, neg = torch.tensor([1.0, 0.2]), torch.tensor([0.5, 0.4])
    # max(0, 0.3 - 1.0 + 0.5) = 0 and max(0, 0.3 - 0.2 + 0.4) = 0.5 -> mean 0.25
    assert ranking_loss(pos, neg, "hinge", 0.3).item() == pytest.approx(0.25)
    assert ranking_loss(pos, neg).item() == pytest.approx(bpr_loss(pos, neg).item())
    torch.manual_seed(0)
    mf = MF(5, 7, 4, loss="hinge", margin=0.5)
    u, p, n = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])
    loss, _ = mf.pairwise_loss(u, p, n)
    s = lambda a, b: (mf.user(a) * mf.item(b)).sum(-1)  # noqa: E731
    assert loss.item() == pytest.approx(torch.relu(s(u, n) - s(u, p) + 0.5).mean().item())


def test_bce_next_item_loss_uses_one_negative_that_is_never_the_target():
    from harness.blocks.sequence import SASRec

    torch.manual_seed(0)
    model = SASRec(n_items=3, dim=8, max_len=4, n_layers=1, n_heads=1, inner=8)
    model.eval()
    tokens = torch.tensor([[0, 1, 2, 3, 1]] * 64)
    mask = torch.zeros(64, 4, dtype=torch.bool)
    mask[:, -1] = True                      # target = item 1 (id 0 after the shift)
    g = torch.Generator().manual_seed(0)
    loss = model.next_item_loss(tokens, mask, "bce", g)
    hidden = model.encode(tokens[:, :-1])[mask]
    w = model.item_weights()
    pos = (hidden * w[0]).sum(-1)
    # with 3 items the negative is item 2 or 3 (ids 1, 2), never the target
    candidates = [torch.nn.functional.softplus(-pos) + torch.nn.functional.softplus((hidden * w[j]).sum(-1))
                  for j in (1, 2)]
    lo = torch.minimum(*candidates).mean().item()
    hi = torch.maximum(*candidates).mean().item()
    assert lo - 1e-6 <= loss.item() <= hi + 1e-6
    assert model.next_item_loss(tokens, mask).item() > 0  # ce still the default


def _claim(**kw):
    from harness.claims import Claim

    return Claim(**{"text": "X beats B", "method": "x", "than": "b", "metric": "m", **kw})


def test_claims_hold_only_for_significant_wins_of_trained_arms():
    from harness.claims import DOES_NOT_HOLD, HOLDS, NOT_TESTABLE, judge

    base, treat = _runs([0.03, 0.031, 0.029])
    per_seed = {"b": {"m": base}, "x": {"m": treat}}
    [v] = judge([_claim()], per_seed, {})
    assert v.verdict == HOLDS and v.p_holm < 0.05 and v.delta > 0
    [v] = judge([_claim(direction="lower")], per_seed, {})
    assert v.verdict == DOES_NOT_HOLD and "reversed" in v.reason
    # the same numbers, but one arm was still improving when its budget ran out
    [v] = judge([_claim()], per_seed, {"b": 1})
    assert v.verdict == NOT_TESTABLE and "still improving" in v.line()
    assert "holds" not in v.line().replace("does not hold", "")
    # one lucky seed: no significant difference
    base, treat = _runs([0.10, 0.0, 0.0])
    [v] = judge([_claim()], {"b": {"m": base}, "x": {"m": treat}}, {})
    assert v.verdict == DOES_NOT_HOLD and "not significant" in v.reason
    # two seeds only
    base, treat = _runs([0.03, 0.03])
    [v] = judge([_claim()], {"b": {"m": base}, "x": {"m": treat}}, {})
    assert v.verdict == NOT_TESTABLE and "needs 3" in v.reason


def test_suite_claims_are_validated(tmp_path):
    from harness.registry import Registry
    from harness.suite import SuiteError, validate_suite

    raw = yaml.safe_load(_write(tmp_path, [{"name": "pop"}, {"name": "ease"}]).read_text())
    raw["claims"] = [{"text": "EASE beats Pop", "method": "ease", "than": "pop",
                      "metric": "ndcg@10"}]
    suite, _ = validate_suite(raw, Registry())
    assert suite.claims[0].than == "pop"
    raw["claims"][0]["than"] = "popp"
    raw["claims"][0]["metric"] = "ndcg@20"
    with pytest.raises(SuiteError) as err:
        validate_suite(raw, Registry())
    assert "claims[0].than: 'popp'" in str(err.value) and "claims[0].metric" in str(err.value)


def test_board_renders_claim_verdicts_and_budget_columns():
    from harness.leaderboard import RunRecord, build_boards, render_markdown
    from harness.registry import Registry
    from harness.suite import validate_suite

    reg = Registry()
    raw = {"suite": "claimed", "datasets": [{"name": "synthetic", "label": "d"}],
           "methods": [{"name": "pop", "label": "b"}, {"name": "pop", "label": "x"}],
           "seeds": [0, 1, 2], "metrics": ["ndcg@10"], "baseline": "b",
           "claims": [{"text": "X *beats* B", "method": "x", "than": "b", "metric": "ndcg@10"}]}
    suite, _ = validate_suite(raw, reg)
    base, treat = _runs([0.03, 0.031, 0.029])
    runs, per_unit = [], {}
    for method, values in (("b", base), ("x", treat)):
        for seed, users in values.items():
            rid = f"{method}{seed}"
            runs.append(RunRecord(rid, method, "d", seed, "s", "p",
                                  {"ndcg@10": float(np.mean(list(users.values()))),
                                   "optimizer_steps": 120.0, "best_epoch": 9.0,
                                   "epochs_run": 10.0, "epoch_budget": 10.0,
                                   "still_improving": float(method == "b" and seed == "0")},
                                  {"bench.task": "topk"}, int(seed)))
            per_unit[rid] = {"ndcg@10": users}
    [board] = build_boards(suite, reg.catalogue, runs, lambda r: per_unit[r.run_id])
    md = render_markdown(suite, [board], "cmd", 0.05,
                         {"when": "now", "store": "s", "git": "g", "png_name": "x.png"})
    assert "- **not testable here**: X \\*beats\\* B" in md  # b was still improving in a run
    assert "still improving in 1/3 runs" in md and "| 120 | 10 / 10 / 10 |" in md


def _deterministic(effect: float, n_users: int = 300, seeds=(0, 1, 2)):
    """Two arms whose training ignores the seed: every seed gives the same per-user values."""
    rng = np.random.default_rng(7)
    b = rng.uniform(0, 1, n_users)
    noise = rng.normal(0, 0.3, n_users)
    t = b + effect + noise - noise.mean()  # the observed difference is exactly ``effect``
    base = {str(s): {f"u{u}": float(v) for u, v in enumerate(b)} for s in seeds}
    treat = {str(s): {f"u{u}": float(v) for u, v in enumerate(t)} for s in seeds}
    return {"pop": {"m": base}, "ease": {"m": treat}}


def test_two_deterministic_arms_are_tested_over_users_not_given_p_zero():
    """Pop vs EASE^R: the same difference on every seed made the seed t-test return p = 0
    however small the difference; with no training variance the users are the sample."""
    [tiny] = compare_runs(_deterministic(0.005), {"ease": "pop"}, ["m"], unit="seeds")
    assert tiny.unit == "bootstrap" and tiny.p_value > 0.3
    [large] = compare_runs(_deterministic(0.2), {"ease": "pop"}, ["m"], unit="seeds")
    assert large.unit == "bootstrap" and 0 < large.p_value < 0.01
    # an arm whose training varies with the seed keeps the test over seeds
    varied = _deterministic(0.2)
    varied["ease"]["m"]["1"] = {u: v + 0.01 for u, v in varied["ease"]["m"]["1"].items()}
    [seeded] = compare_runs(varied, {"ease": "pop"}, ["m"], unit="seeds")
    assert seeded.unit == "seeds"
