"""Reasoning task generators and TRPA's level / pair construction."""
import random

from harness.tasks.levels import format_ok
from harness.tasks.reasoning import (arithmetic_corruptions, consistent_assignments, kk_answer,
                                     kk_corruptions, make_reasoning, parse_kk, parse_number,
                                     digits, kk_problem)
from harness.tasks.levels import level_pairs as build_pairs


def test_kk_puzzles_have_unique_solutions_and_the_parser_round_trips():
    rng = random.Random(1)
    for n in (2, 3, 4):
        for _ in range(15):
            p = kk_problem(rng, n)
            assert len(set(p.people)) == n and p.prompt.endswith("<think>")
            assert parse_kk(kk_answer(p.people, p.answer), p.people) == tuple(p.answer)
    # a statement set with two consistent assignments is rejected by the generator's check
    assert len(consistent_assignments([("is", 1, True), ("is", 0, True)], 2)) == 2


def test_every_level_is_reachable_with_the_official_rewards():
    for kind, corrupt in (("knights_knaves", kk_corruptions), ("arithmetic", arithmetic_corruptions)):
        data = make_reasoning(kind, 20, 5, 5, [2, 3], seed=0)
        rng = random.Random(0)
        for p in data.train:
            assert data.grade(p, p.solution).level == 1
            for level, text in corrupt(p, rng).items():
                g = data.grade(p, text)
                assert g.level == level, (kind, level, text)
        assert data.grade(data.train[0], "").level == 4
    kk = make_reasoning("knights_knaves", 3, 1, 1, [2], seed=0)
    p = kk.train[0]
    assert [kk.grade(p, p.solution).reward] == [3.0]
    assert kk.grade(p, "x </think> <answer> </answer>").reward == -1.0  # empty answer: L4, -1
    assert kk.grade(p, "no tags at all").reward == -3.0


def test_format_check_counts_the_prefilled_think_and_order():
    assert format_ok("a </think> <answer> b </answer>")
    assert not format_ok("<think> a </think> <answer> b </answer>")  # second <think>
    assert not format_ok("a <answer> b </answer> </think>")          # wrong order


def test_arithmetic_and_splits_are_disjoint_and_deterministic():
    assert parse_number(digits(-42)) == -42 and parse_number("1 x") is None
    a = make_reasoning("arithmetic", 30, 10, 10, [2, 3], seed=3)
    b = make_reasoning("arithmetic", 30, 10, 10, [2, 3], seed=3)
    assert [p.prompt for p in a.test] == [p.prompt for p in b.test]
    prompts = [p.prompt for p in a.train + a.valid + a.test]
    assert len(set(prompts)) == len(prompts)
    mix_prompts, mix_resp = a.sft_pairs((0.25, 0.25, 0.25, 0.25), seed=0)
    levels = {a.grade(p, r).level for p, r in zip(a.train, mix_resp)}
    assert levels == {1, 2, 3, 4}


def test_pairs_cross_levels_within_prompt_only():
    levels = [1, 2, 2, 4, 3, 3]
    groups = [0, 0, 0, 0, 1, 1]
    pairs = build_pairs(levels, groups, "all")
    # group 0: L1>L2 (2 pairs), L1>L4, L2>L4 (2 pairs); group 1: one level -> none
    assert sorted(pairs) == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]
    assert sorted(build_pairs(levels, groups, "best_worst")) == [(0, 3)]
    assert build_pairs([2, 2], [0, 0]) == []


def test_cases_scratchpad_checks_assignments_in_order_up_to_the_solution():
    from harness.tasks.reasoning import evaluate

    data = make_reasoning("knights_knaves", 30, 4, 4, [2, 3], seed=0, scratchpad="cases")
    same = make_reasoning("knights_knaves", 30, 4, 4, [2, 3], seed=0)
    assert [p.prompt for p in data.train] == [p.prompt for p in same.train]  # same puzzles
    assert data.fingerprint != same.fingerprint  # another solution format: another split id
    rng = random.Random(0)
    for p in data.train:
        think = p.solution.split("</think>")[0].strip()
        lines = [ln.split() for ln in think.split(" ; ")]
        n = p.difficulty
        for ln in lines:  # roles : truth values verdict, each truth value recomputed
            roles = tuple(w == "knight" for w in ln[:n])
            assert ln[n] == ":" and ln[n + 1:2 * n + 1] == [
                "true" if evaluate(s, roles) else "false" for s in p.statements]
            consistent = all((w == "true") == r for w, r in zip(ln[n + 1:2 * n + 1], roles))
            assert ln[-1] == ("yes" if consistent else "no")
        assert [ln[-1] for ln in lines].count("yes") == 1 and lines[-1][-1] == "yes"
        assert tuple(w == "knight" for w in lines[-1][:n]) == tuple(p.answer)
        assert data.grade(p, p.solution).level == 1
        for level, text in data.corrupt(p, rng).items():
            assert data.grade(p, text).level == level, (level, text)
    import pytest
    from harness.api import BenchError

    with pytest.raises(BenchError, match="scratchpad"):
        make_reasoning("knights_knaves", 2, 1, 1, [2], seed=0, scratchpad="proof")
