"""Bound claims ("this arm gets KL below 0.05"): a count over training runs, judged on the
board next to the paired claims, and validated in the suite."""
import pytest

from harness.claims import DOES_NOT_HOLD, HOLDS, NOT_TESTABLE, Claim, judge


def _bound(**kw):
    return Claim(**{"text": "X converges", "method": "x", "metric": "kl", "direction": "lower",
                    "threshold": 0.05, **kw})


def _runs(values):
    """per_seed[metric][seed] = {unit: value}: two units per run, mean = the value."""
    return {str(s): {"u0": v - 0.001, "u1": v + 0.001} for s, v in enumerate(values)}


def test_a_bound_claim_holds_only_when_every_run_meets_it():
    [v] = judge([_bound()], {"x": {"kl": _runs([0.04, 0.049, 0.03])}}, {})
    assert v.verdict == HOLDS and "kl < 0.05 in 3/3 runs" in v.line() and "max 0.049" in v.line()
    [v] = judge([_bound()], {"x": {"kl": _runs([0.04, 0.2, 0.03])}}, {})
    assert v.verdict == DOES_NOT_HOLD and "in 2/3 runs" in v.line()
    [v] = judge([_bound(direction="higher", threshold=0.5)], {"x": {"kl": _runs([0.6, 0.7, 0.9])}}, {})
    assert v.verdict == HOLDS and "kl > 0.5 in 3/3 runs" in v.line() and "min 0.6" in v.line()


def test_a_bound_claim_is_not_testable_for_under_trained_arms_or_too_few_runs():
    [v] = judge([_bound()], {"x": {"kl": _runs([0.04, 0.04, 0.04])}}, {"x": 1})
    assert v.verdict == NOT_TESTABLE and "still improving" in v.reason
    [v] = judge([_bound()], {"x": {"kl": _runs([0.04, 0.04])}}, {})
    assert v.verdict == NOT_TESTABLE and "needs 3" in v.reason
    [v] = judge([_bound()], {}, {})
    assert v.verdict == NOT_TESTABLE and "no finished runs of x" in v.reason


def test_bound_claims_stay_out_of_the_holm_family():
    from harness.claims import Claim as C

    paired = C(text="X beats B", method="x", than="b", metric="kl", direction="lower")
    per_seed = {"x": {"kl": _runs([0.01, 0.011, 0.012])}, "b": {"kl": _runs([0.2, 0.21, 0.19])}}
    alone = judge([paired], per_seed, {})[0].p_holm
    with_bounds = judge([paired, _bound(), _bound(method="b")], per_seed, {})
    assert with_bounds[0].p_holm == alone
    assert [v.verdict for v in with_bounds[1:]] == [HOLDS, DOES_NOT_HOLD]


def test_a_claim_needs_exactly_one_of_than_or_threshold():
    with pytest.raises(ValueError, match="exactly one of"):
        Claim(text="t", method="x", metric="kl")
    with pytest.raises(ValueError, match="exactly one of"):
        Claim(text="t", method="x", than="b", metric="kl", threshold=0.1)


def test_suite_accepts_bound_claims_and_checks_their_method():
    from harness.registry import Registry
    from harness.suite import SuiteError, validate_suite

    raw = {"suite": "b", "datasets": [{"name": "synthetic"}], "methods": [{"name": "pop"}],
           "metrics": ["ndcg@10"],
           "claims": [{"text": "Pop gets NDCG above 0", "method": "pop", "metric": "ndcg@10",
                       "threshold": 0.0}]}
    suite, _ = validate_suite(raw, Registry())
    assert suite.claims[0].threshold == 0.0 and suite.claims[0].than is None
    raw["claims"][0]["method"] = "popp"
    with pytest.raises(SuiteError, match="claims\\[0\\].method: 'popp'"):
        validate_suite(raw, Registry())
