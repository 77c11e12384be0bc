"""TTA4SR settings chosen on validation (``grid``): the grid's validation at `bench
validate` time, the choice (best validation value, the first on ties, never test), its
metrics, its board column, and the backbone's optimiser steps reported by every cell."""
from __future__ import annotations

import pytest
import torch

import plugins.baselines
import plugins.tta4sr
from harness.context import Context
from harness.leaderboard import RunRecord, build_boards
from harness.registry import Registry
from plugins.tta4sr.params import TTAParams
from plugins.tta4sr.selection import select_on_validation

BP = {"dim": 8, "max_len": 12, "epochs": 2, "batch_size": 32}


@pytest.fixture(scope="module")
def reg() -> Registry:
    r = Registry(autoload=False)
    r.register(plugins.baselines, name="baselines")
    r.register(plugins.tta4sr, name="tta4sr")
    return r


def suite(methods, seeds=(0,)):
    return {"suite": "tta-grid", "seeds": list(seeds), "metrics": ["ndcg@10", "hit_rate@10"],
            "datasets": [{"name": "synthetic", "task": "sequential",
                          "params": {"n_users": 40, "n_items": 30, "n_interactions": 900},
                          "split": {"strategy": "leave_one_out"}}],
            "methods": methods}


def test_candidates_are_every_combination_in_grid_order():
    p = TTAParams(operator="tnoise", grid={"noise": [[0.1, 0.5], [0.5, 1.0]], "n_out": [0, 5]})
    got = [(c.noise, c.n_out, c.grid) for c in p.candidates()]
    assert got == [((0.1, 0.5), 0, {}), ((0.1, 0.5), 5, {}), ((0.5, 1.0), 0, {}),
                   ((0.5, 1.0), 5, {})]
    assert got[0] and TTAParams(operator="tmask_r").candidates()[0].ratio == 0.5
    chosen = p.candidates()[3]
    assert chosen.selected(list(p.grid)) == {"selected_noise_lo": 0.5, "selected_noise_hi": 1.0,
                                             "selected_n_out": 5.0}


@pytest.mark.parametrize("params,error", [
    ({"operator": "tmask_r", "grid": {"sigma": [0.1]}}, "grid.sigma: not a searchable knob"),
    ({"operator": "tmask_r", "grid": {"ratio": []}}, "grid.ratio: needs a non-empty list"),
    ({"operator": "tmask_r", "grid": {"ratio": [0.3, 1.5]}}, "grid candidate {'ratio': 1.5}"),
    ({"operator": "tnoise", "grid": {"noise": [[1.0, 0.5]]}}, "needs b <= a"),
    ({"operator": "none", "grid": {"ratio": [0.1]}}, "operator 'none' has no settings"),
    ({"operator": "tmask_r", "grid": {"ratio": [0.1] * 9, "m": [1] * 9}}, "81 combinations"),
])
def test_bad_grids_fail_at_validate_time(params, error, reg):
    from harness.suite import SuiteError, validate_suite

    with pytest.raises(SuiteError, match=error):
        validate_suite(suite([{"name": "tta4sr", "params": params}]), reg)


class _Validating(Context):
    """A context whose validation value is a known function of the candidate's ratio."""

    def __init__(self, reg, value, **kw):
        super().__init__(registry=reg, seed=0, metrics=["ndcg@10"], valid_metric="ndcg@10",
                         device=torch.device("cpu"), **kw)
        self.value, self.scored, self.logged = value, [], []
        self.log_metrics = lambda m, step=None: self.logged.append((m, step))

    def validate(self, model, dataset):
        self.scored.append(model.params.ratio)
        return self.value(model.params.ratio)


def test_the_best_validation_value_is_chosen_and_the_first_on_ties(reg):
    net = torch.nn.Linear(1, 1)   # a stand-in backbone: validation is faked below
    p = TTAParams(operator="tmask_r", grid={"ratio": [0.1, 0.3, 0.5, 0.7]})
    ctx = _Validating(reg, lambda r: -abs(r - 0.5))
    chosen, record = select_on_validation(net, p, None, ctx)
    assert chosen.ratio == 0.5 and chosen.grid == {} and ctx.scored == [0.1, 0.3, 0.5, 0.7]
    assert record["selected_ratio"] == 0.5 and record["grid_candidates"] == 4.0
    assert record["grid_best_valid"] == 0.0
    assert [step for _, step in ctx.logged] == [0, 1, 2, 3]
    assert ctx.logged[1][0] == {"grid_valid_ndcg_at_10": pytest.approx(-0.2)}
    tie = _Validating(reg, lambda r: 1.0 if r >= 0.3 else 0.0)
    assert select_on_validation(net, p, None, tie)[0].ratio == 0.3
    # no grid: the cell's own setting, nothing scored, nothing logged
    plain = TTAParams(operator="tmask_r", ratio=0.2)
    assert select_on_validation(net, plain, None, tie) == (plain, {})


def test_a_grid_cell_tests_the_setting_validation_chose(reg, workdir, monkeypatch):
    from harness.runner import prepare_dataset, run_cell
    from harness.suite import validate_suite

    grid = [0.1, 0.4, 0.7]
    fixed = {"backbone_params": BP, "operator": "tmask_r", "m": 3}
    _, cells = validate_suite(suite(
        [{"name": "tta4sr", "label": "grid", "params": {**fixed, "grid": {"ratio": grid}}}]
        + [{"name": "tta4sr", "label": f"r{r}", "params": {**fixed, "ratio": r}} for r in grid]),
        reg)
    ds = prepare_dataset(cells[0].dataset, cells[0].task, reg, workdir)
    parts: list[str] = []
    real_score = Context.score

    def spy(self, model, dataset, part, metrics):
        parts.append(part)
        return real_score(self, model, dataset, part, metrics)

    monkeypatch.setattr(Context, "score", spy)
    out = {c.method.key: run_cell(c, ds, reg, cache_dir=workdir)[0] for c in cells}
    chosen = out["grid"]["selected_ratio"]
    assert chosen in grid and out["grid"]["grid_candidates"] == 3
    # the grid cell's test numbers are the fixed cell's at the chosen ratio
    twin = out[f"r{chosen}"]
    assert out["grid"]["ndcg@10"] == twin["ndcg@10"]
    assert out["grid"]["hit_rate@10"] == twin["hit_rate@10"]
    # the choice is the best validation value (the backbone's epochs validate first)
    valid = {r: real_score(Context(registry=reg, seed=0, metrics=["ndcg@10"],
                                   valid_metric="ndcg@10", device=torch.device("cpu")),
                           _model(reg, ds, workdir, r), ds, "valid", ["ndcg@10"]).metrics["ndcg@10"]
             for r in grid}
    assert valid[chosen] == max(valid.values()) == out["grid"]["grid_best_valid"]
    # the grid cell scored validation once per epoch and per candidate before test, once
    first_cell = parts[:parts.index("test") + 1]
    assert first_cell == ["valid"] * (BP["epochs"] + len(grid)) + ["test"]
    # every cell reports the backbone's optimiser steps, the trained one and the cached ones
    steps = {k: v["optimizer_steps"] for k, v in out.items()}
    assert len(set(steps.values())) == 1 and steps["grid"] > 0
    assert out["grid"]["backbone_cached"] == 0.0 and out["r0.1"]["backbone_cached"] == 1.0


def _model(reg, ds, workdir, ratio):
    """The cached backbone wrapped with a fixed ratio (the same weights the cells use)."""
    from plugins.tta4sr.backbone import load_or_train
    from plugins.tta4sr.wrapper import TTAModel

    ctx = Context(registry=reg, seed=0, metrics=["ndcg@10"], valid_metric="ndcg@10",
                  device=torch.device("cpu"), cache_dir=workdir)
    p = TTAParams(backbone_params=BP, operator="tmask_r", m=3, ratio=ratio)
    backbone, _, cached = load_or_train("sasrec", p.backbone_params, ds, ctx)
    assert cached
    return TTAModel(backbone, p, seed=0)


def _rec(method, seed, metrics):
    return RunRecord(f"{method}-{seed}", method, "d", str(seed), "s1", "p1",
                     {"ndcg@10": 0.1, **metrics}, {"bench.task": "sequential"}, int(seed))


def test_the_board_shows_what_validation_chose_and_only_where_something_was(reg):
    from harness.suite import validate_suite

    raw = {"suite": "agg", "datasets": [{"name": "synthetic", "label": "d"}],
           "methods": [{"name": "pop", "label": m} for m in ("a", "b", "c")], "seeds": [0, 1, 2],
           "metrics": ["ndcg@10"], "baseline": "a"}
    s = validate_suite(raw, reg)[0]
    runs = [_rec("a", i, {}) for i in range(3)]
    runs += [_rec("b", i, {"selected_ratio": r}) for i, r in enumerate([0.5, 0.7, 0.5])]
    runs += [_rec("c", i, {"selected_noise_lo": lo, "selected_noise_hi": 2 * lo, "selected_m": 10})
             for i, lo in enumerate([0.5, 0.5, 1.0])]
    [board] = build_boards(s, reg.catalogue, runs, lambda r: None)
    col = "chosen on valid (runs)"
    assert col in board.column_names
    assert [r.columns[col] for r in board.rows] == [
        "–", "ratio 0.5 (2), ratio 0.7 (1)", "m 10 noise [0.5, 1] (2), m 10 noise [1, 2] (1)"]
    [plain] = build_boards(s, reg.catalogue, runs[:3], lambda r: None)
    assert col not in plain.column_names and col not in plain.rows[0].columns
