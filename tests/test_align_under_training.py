"""The online alignment arms log the harness's under-training flag from their validation
curve, so a reasoning board's claims are 'not testable here' for an arm its budget cut
short instead of being judged on it."""
from plugins.trpa import VALID_PATIENCE, under_training_flag


def test_best_in_the_last_evaluations_is_still_improving():
    rising = [(0, 0.2), (10, 0.3), (20, 0.35), (30, 0.4), (40, 0.45)]
    flag = under_training_flag(rising, steps=40, eval_every=10)
    assert flag["still_improving"] == 1.0 and flag["epoch_budget"] == 40
    assert flag["patience"] == VALID_PATIENCE and flag["eval_every"] == 10


def test_an_early_peak_or_the_start_being_best_is_not_flagged():
    plateau = [(0, 0.2), (10, 0.4), (20, 0.4), (30, 0.4), (40, 0.38)]  # first best at 10
    assert under_training_flag(plateau, steps=40, eval_every=10)["still_improving"] == 0.0
    falling = [(0, 0.5), (10, 0.4), (20, 0.3)]
    assert under_training_flag(falling, steps=20, eval_every=10)["still_improving"] == 0.0
    assert under_training_flag([], steps=40, eval_every=10) == {}
    assert under_training_flag(plateau, steps=40, eval_every=0) == {}
