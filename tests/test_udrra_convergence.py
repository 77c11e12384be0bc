"""UDRRA run to convergence: the stopping rule, log Z's warm start and own learning rate,
online sampling, per-seed references, and the preference suite's equal budgets."""
import itertools
import math
from pathlib import Path

import pytest
import torch
import yaml

from harness.context import Context
from harness.registry import Registry
from harness.tasks.preference import make_preference, tau_log_partition
from plugins.udrra import UDRRAParams, initial_tau_log_z, train_udrra
from plugins.udrra.convergence import KLConvergence

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
LLM = {"layers": 1, "dim": 32, "heads": 2, "ffn_mult": 2, "max_positions": 8, "sft_steps": 30,
       "sft_batch_size": 32}


def _ctx(tmp_path, seed=0):
    return Context(registry=Registry(autoload=False), seed=seed, metrics=["kl_target"],
                   valid_metric="kl_target", device=torch.device("cpu"), cache_dir=tmp_path,
                   workdir=tmp_path / "cells")


def _train(tmp_path, seed=0, **params):
    data = make_preference(n_prompts=3, length=2, vocab=3, ref_samples=300, seed=0)
    p = UDRRAParams(**{"llm": dict(LLM), "eval_every": 2, **params})
    return data, train_udrra(p, data, _ctx(tmp_path, seed))


# --- the stopping rule ----------------------------------------------------------------------

def test_stops_when_kl_reaches_the_threshold():
    c = KLConvergence(threshold=0.05, patience=3)
    assert [c.update(s, kl) for s, kl in [(0, 1.0), (10, 0.5), (20, 0.04)]] == [False, False, True]
    h = c.history(budget=100, every=10, steps_run=20)
    assert c.reason == "threshold" and h["steps_to_kl"] == 20 and h["stopped_threshold"] == 1
    assert h["still_improving"] == 0.0 and h["steps_run"] == 20


def test_stops_on_a_plateau_after_patience_evaluations_without_a_relative_gain():
    c = KLConvergence(threshold=0.05, patience=3, min_delta=0.01)
    # 0.5 -> 0.499 is a 0.2% gain: not an improvement; three of those stop the run
    stops = [c.update(s, kl) for s, kl in [(0, 1.0), (10, 0.5), (20, 0.499), (30, 0.4985),
                                           (40, 0.498)]]
    assert stops == [False, False, False, False, True] and c.reason == "plateau"
    h = c.history(budget=1000, every=10, steps_run=40)
    assert c.best_step == 10 and h["best_epoch"] == 9 and h["still_improving"] == 0.0
    assert h["steps_to_kl"] == 1001  # censored: never below the threshold
    assert c.lowest == 0.498


def test_a_run_improving_at_the_end_of_its_budget_is_flagged():
    c = KLConvergence(threshold=0.05, patience=3)
    for s in range(0, 101, 10):
        assert not c.update(s, 1.0 - s / 200)  # still falling by more than 1% each time
    h = c.history(budget=100, every=10, steps_run=100)
    assert c.reason == "budget" and h["still_improving"] == 1.0
    assert h["epoch_budget"] == 100 and h["patience"] == 3


def test_kl_area_holds_a_stopped_curve_at_its_last_value():
    c = KLConvergence(threshold=0.05, patience=2)
    for s, kl in [(0, 1.0), (10, 0.5), (20, 0.01)]:
        c.update(s, kl)
    # grid 0..50 every 10: 1.0, 0.5, then 0.01 for 20, 30, 40, 50
    assert math.isclose(c.area(50, 10), (1.0 + 0.5 + 4 * 0.01) / 6)
    slow = KLConvergence(threshold=0.05, patience=2)
    for s, kl in [(0, 1.0), (10, 0.9), (20, 0.8), (30, 0.6), (40, 0.3), (50, 0.04)]:
        slow.update(s, kl)
    assert slow.area(50, 10) > c.area(50, 10)  # same end, reached later: worse


def test_the_trainer_stops_early_and_logs_its_speed(tmp_path):
    _, pol = _train(tmp_path, preset="bda_exact", steps=400, lr=3e-3, kl_threshold=0.2,
                    stop_at_threshold=True, patience=5)
    h = pol.history
    assert h["stopped_threshold"] == 1 and h["steps_run"] == h["steps_to_kl"] < 400
    assert h["cpu_seconds_run"] > 0 and h["cpu_seconds_to_kl"] <= h["cpu_seconds_run"] + 1e-9
    kls = [v for _, v in h["curve_kl_target"]]
    assert kls[-1] < 0.2 <= min(kls[:-1])  # stopped at the first evaluation below it


# --- log Z: closed-form warm start and its own learning rate -------------------------------

def _brute_force_tau_log_z(pol, data, tau):
    """τ·log Z(x) by walking every response token by token: π_ref(y|x) as the product of
    the reference model's next-token probabilities (restricted to response tokens), the
    reward looked up per response, the sum in float64 — independent of the trainer's
    batched enumeration."""
    out = []
    model = pol.model
    for x in range(data.n_prompts):
        z = 0.0
        for y, toks in enumerate(itertools.product(range(data.vocab), repeat=data.length)):
            assert list(toks) == data.responses[y].tolist()
            ids, logp = [int(pol.prompt_tok[x])], 0.0
            for t in toks:
                with torch.no_grad():
                    logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
                logp += float(torch.log_softmax(logits[pol.resp_tok], -1)[t])
                ids.append(int(pol.resp_tok[t]))
            z += math.exp(logp + float(data.rewards[x, y]) / tau)
        out.append(tau * math.log(z))
    return torch.tensor(out, dtype=torch.float64)


def test_warm_started_log_z_equals_the_enumerated_partition_function(tmp_path):
    tau = 0.1
    data, pol = _train(tmp_path, preset="ra_learned_z", z_init="warm", steps=1, lr=1e-12,
                       z_lr=1e-12, tau=tau)
    pol.model = _reference_model(tmp_path, data)
    exact = _brute_force_tau_log_z(pol, data, tau)
    assert torch.allclose(pol.tau_log_z_init.double(), exact, atol=1e-4), (pol.tau_log_z_init, exact)
    assert pol.history["z_gap_init"] < 1e-4
    # the zero start is off by the whole partition function
    assert float(exact.abs().min()) > 0.05
    zero = initial_tau_log_z("zero", pol.ref_logp, data.rewards, tau)
    assert torch.equal(zero, torch.zeros(data.n_prompts))


def _reference_model(tmp_path, data):
    """The cached π_ref the trainer started from (train_udrra trained a copy of it)."""
    from harness.llm import LLMConfig, load_llm

    prompts, responses = data.sft_pairs(seed=0)
    return load_llm(LLMConfig(**LLM), data.corpus(), prompts, responses, cache_dir=tmp_path,
                    device="cpu").model.eval()


def test_log_z_own_learning_rate_reaches_its_value_the_shared_one_does_not(tmp_path):
    common = dict(preset="ra_learned_z", steps=40, lr=1e-4, tau=0.1)
    _, shared = _train(tmp_path, **common)
    _, own = _train(tmp_path, z_lr=3e-2, **common)
    # Adam moves a parameter by about lr per step: 40 steps x 1e-4 cannot cover the gap
    assert shared.history["z_gap_final"] > 0.5 * shared.history["z_gap_init"]
    assert own.history["z_gap_final"] < 0.5 * own.history["z_gap_init"]


def test_tau_log_partition_is_the_log_of_the_sum():
    ref = torch.log_softmax(torch.randn(2, 5, dtype=torch.float64), -1)
    r = torch.rand(2, 5, dtype=torch.float64)
    by_hand = 0.5 * torch.log((ref.exp() * torch.exp(r / 0.5)).sum(-1))
    assert torch.allclose(tau_log_partition(ref, r, 0.5), by_hand)


# --- online sampling and the per-seed reference ------------------------------------------

def test_token_by_token_sampling_follows_the_enumerated_policy(tmp_path):
    data, pol = _train(tmp_path, preset="pra", steps=1)
    probs = pol.enumerate_logprobs().exp().detach()
    xs = torch.zeros(20000, dtype=torch.long)
    ys = pol.sample(xs, torch.Generator().manual_seed(0))
    freq = torch.bincount(ys, minlength=probs.shape[1]).double() / len(ys)
    assert float((freq - probs[0].double()).abs().max()) < 0.015
    assert 0.5 * float((freq - probs[0].double()).abs().sum()) < 0.03


def test_ref_per_seed_changes_the_reference_fixed_does_not(tmp_path):
    refs = {}
    for seed in (0, 1):
        for per_seed in (False, True):
            _, pol = _train(tmp_path, seed=seed, preset="pra", steps=1, ref_per_seed=per_seed)
            refs[seed, per_seed] = pol.ref_logp
    assert torch.equal(refs[0, False], refs[1, False])
    assert not torch.allclose(refs[0, True], refs[1, True])
    assert torch.equal(refs[0, True], refs[0, False])  # seed 0 + 0: the same fit


# --- the suite: equal budgets, every arm ------------------------------------------------

def test_preference_suite_gives_every_arm_the_same_step_budget_and_rule():
    from harness.suite import validate_suite

    suite, cells = validate_suite(yaml.safe_load((ROOT / "suites/preference.yaml").read_text()),
                                  Registry())
    rules = {(c.method_params["steps"], c.method_params["eval_every"],
              c.method_params["patience"], c.method_params["kl_threshold"],
              c.method_params["stop_at_threshold"], c.method_params["batch"],
              c.method_params["ref_per_seed"]) for c in cells}
    assert len(rules) == 1, rules
    steps, every, patience, threshold, stop, _, per_seed = rules.pop()
    assert stop and per_seed and threshold == 0.05 and patience and steps >= 10 * patience * every
    # the learning rate of every trained arm is chosen from the same three values on the
    # tuning seed, which is none of the reported seeds
    assert suite.tuning.sampler == "grid" and suite.tuning.trials == 3
    assert suite.tuning.seed not in suite.seeds and len(suite.seeds) >= 3
    grids = {tuple(m.search["lr"].args) for m in suite.methods}
    assert len(grids) == 1 and len(grids.pop()) == 3


def test_optimiser_steps_are_the_policys_not_the_reference_fit(tmp_path):
    from harness.runner import run_cell
    from harness.suite import validate_suite

    raw = {"suite": "s", "datasets": [{"name": "preference_synth",
                                       "params": {"n_prompts": 3, "length": 2, "vocab": 3,
                                                  "ref_samples": 300}}],
           "methods": [{"name": "udrra", "params": {"preset": "pra", "steps": 7, "eval_every": 2,
                                                    "llm": dict(LLM)}}],
           "seeds": [0], "metrics": ["kl_target"], "valid_metric": "kl_target"}
    reg = Registry()
    _, [cell] = validate_suite(raw, reg)
    from harness.runner import prepare_dataset

    ds = prepare_dataset(cell.dataset, cell.task, reg, tmp_path)
    metrics, _, _ = run_cell(cell, ds, reg, None, tmp_path)  # the SFT of π_ref runs here
    assert metrics["optimizer_steps"] == 7 and metrics["steps_run"] == 7


def test_curves_of_early_stopped_runs_are_held_at_their_last_value():
    import importlib.util

    spec = importlib.util.spec_from_file_location("align_curves", ROOT / "benchmarks/align_curves.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.hold_last({0: 1.0, 25: 0.04}, [0, 25, 50, 75]) == {0: 1.0, 25: 0.04, 50: 0.04, 75: 0.04}
    assert mod.hold_last({25: 0.5}, [0, 25, 50]) == {25: 0.5, 50: 0.5}
