"""The scaling math against MAKER's published numbers and against the real VoteRace."""

from __future__ import annotations

import doctest
import math
import random

import pytest

from maker import scaling
from maker.errors import ConfigError
from maker.scaling import (
    collision_test,
    estimate_p,
    expected_collisions,
    expected_cost,
    expected_samples,
    expected_votes,
    first_to_k_expected_votes,
    first_to_k_p_sub,
    k_for_budget,
    k_min,
    monte_carlo,
    p_full,
    p_sub,
    simulate_race,
)

HANOI_STEPS = 2**20 - 1

# MAKER.md / the paper: per-step error rate -> k_min at s = 2^20 - 1, t = 0.95, m = 1.
PAPER_K_MIN = [
    (0.3571, 29),
    (0.0040, 4),
    (0.0022, 3),
    (0.0018, 3),
    (0.1839, 12),
    (0.0358, 6),
    (0.2342, 15),
    (0.0569, 6),
    (0.0393, 6),
]


def test_docstring_examples_run() -> None:
    failed, attempted = doctest.testmod(scaling)
    assert attempted > 20 and failed == 0


@pytest.mark.parametrize(("error", "k"), PAPER_K_MIN)
def test_k_min_reproduces_the_paper_table(error: float, k: int) -> None:
    assert k_min(1 - error, HANOI_STEPS, 0.95) == k


@pytest.mark.parametrize(("error", "k"), PAPER_K_MIN)
def test_k_min_is_the_smallest_k_reaching_the_target(error: float, k: int) -> None:
    assert p_full(1 - error, k, HANOI_STEPS) >= 0.95
    if k > 1:
        assert p_full(1 - error, k - 1, HANOI_STEPS) < 0.95


def test_p_full_of_the_hanoi_run() -> None:
    assert round(p_full(1 - 0.0022, 3, HANOI_STEPS), 4) == 0.9888


def test_two_candidate_race_matches_the_paper() -> None:
    assert round(p_sub(0.7, 3), 3) == 0.927
    # Exactly 6.4054; the paper's 6.40 is a simulated value.
    assert expected_votes(0.7, 3) == pytest.approx(6.40, abs=0.01)
    assert expected_votes(0.7, 3) == pytest.approx(3 * (2 * 343 / 370 - 1) / 0.4)


@pytest.mark.parametrize("p", [0.51, 0.6, 0.7, 0.9, 0.9978])
@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_expected_votes_equals_makers_expression(p: float, k: int) -> None:
    makers = (2 * k * p_sub(p, k) - k) / (2 * p - 1)
    assert expected_votes(p, k) == pytest.approx(makers, rel=1e-12)
    assert k <= expected_votes(p, k) <= k / (2 * p - 1) + 1e-12


def test_expected_votes_is_continuous_through_one_half() -> None:
    assert expected_votes(0.5, 4) == 16
    assert expected_votes(0.5 + 1e-12, 4) == pytest.approx(16, rel=1e-9)
    assert expected_votes(0.5 - 1e-12, 4) == pytest.approx(16, rel=1e-9)
    assert expected_votes(0.3, 3) == pytest.approx(expected_votes(0.7, 3))
    assert expected_votes(0.0, 3) == expected_votes(1.0, 3) == 3


def test_p_sub_edges_and_symmetry() -> None:
    assert p_sub(1, 5) == 1.0 and p_sub(0, 5) == 0.0 and p_sub(0.5, 5) == 0.5
    assert p_sub(0.3, 4) == pytest.approx(1 - p_sub(0.7, 4))
    assert p_sub(1e-300, 50) == 0.0  # no overflow of ((1 - p) / p) ** k
    assert p_sub(0.7, 1) == pytest.approx(0.7)


def test_p_full_keeps_precision_for_huge_runs() -> None:
    # 1 - p_sub is ~1e-20 here: 1 - p_sub rounds to 0, the log1p form does not.
    p, k, steps = 0.99, 10, 10**18
    expected = math.exp(-steps * (0.01 / 0.99) ** k)
    assert p_full(p, k, steps) == pytest.approx(expected, rel=1e-9)
    assert p_full(p, k, 2 * steps, m=2) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("p", "k", "rule"),
    [
        (0.7, 3, "ahead-by-k"),
        (0.6, 2, "ahead-by-k"),
        (0.55, 4, "ahead-by-k"),
        (0.9, 1, "ahead-by-k"),
        (0.5, 3, "ahead-by-k"),
        (0.4, 2, "ahead-by-k"),
        (0.7, 3, "first-to-k"),
        (0.6, 4, "first-to-k"),
    ],
)
def test_monte_carlo_of_the_real_vote_race_agrees(p: float, k: int, rule: str) -> None:
    est = monte_carlo(p, k, 4000, seed=2025, rule=rule)  # type: ignore[arg-type]
    if rule == "ahead-by-k":
        want_p, want_n = p_sub(p, k), expected_votes(p, k)
    else:
        want_p, want_n = first_to_k_p_sub(p, k), first_to_k_expected_votes(p, k)
    assert abs(est.p_correct - want_p) <= 3 * est.p_correct_se
    assert abs(est.mean_votes - want_n) <= 3 * est.mean_votes_se


def test_simulate_race_uses_the_rule() -> None:
    assert simulate_race(1.0, 4, random.Random(0)) == (True, 4)
    assert simulate_race(0.0, 2, random.Random(0), rule="first-to-k") == (False, 2)
    with pytest.raises(ConfigError, match="rule"):
        simulate_race(0.7, 2, random.Random(0), rule="most-votes")  # type: ignore[arg-type]


def test_k_min_grows_like_log_steps() -> None:
    p, t = 0.99, 0.95
    ks = []
    for steps in (10**3, 10**6, 10**9, 10**12, 10**15):
        k = k_min(p, steps, t)
        asymptote = (math.log(steps) - math.log(-math.log(t))) / math.log(p / (1 - p))
        assert asymptote <= k < asymptote + 1
        ks.append(k)
    gaps = [b - a for a, b in zip(ks, ks[1:], strict=False)]
    step_up = math.log(1e3) / math.log(99)  # ~1.5 more votes of margin per factor 1000 in s
    assert all(math.floor(step_up) <= gap <= math.ceil(step_up) for gap in gaps)


def test_k_min_edges() -> None:
    assert k_min(1.0, 10**9, 0.999) == 1
    assert k_min(0.9, 1, 0.5) == 1  # one step at p = 0.9 already beats 0.5
    assert k_min(0.9, 10, 1e-9) == 1
    assert k_min(0.99, HANOI_STEPS, 0.95, m=1) >= k_min(0.99, HANOI_STEPS, 0.95, m=8)


def test_expected_samples_and_cost() -> None:
    assert expected_samples(0.7, 3, 0.5) == pytest.approx(2 * expected_votes(0.7, 3))
    run = expected_cost(
        0.9978,
        3,
        HANOI_STEPS,
        0.9,
        tokens_per_sample=1200,
        price_per_million_tokens=0.8,
        seconds_per_sample=0.01,
    )
    samples = HANOI_STEPS * expected_votes(0.9978, 3) / 0.9
    assert run.samples == pytest.approx(samples)
    assert run.tokens == pytest.approx(samples * 1200)
    assert run.cost == pytest.approx(samples * 1200 * 0.8 / 1e6)
    assert run.seconds == pytest.approx(samples * 0.01)
    assert run.p_full == pytest.approx(p_full(0.9978, 3, HANOI_STEPS))
    bare = expected_cost(0.9978, 3, HANOI_STEPS)
    assert bare.tokens is None and bare.cost is None and bare.seconds is None
    assert expected_cost(0.7, 3, 100, m=2).samples == pytest.approx(50 * expected_votes(0.7, 3))


def test_k_for_budget_is_the_largest_k_that_fits() -> None:
    p, steps, v = 0.9978, HANOI_STEPS, 0.95
    for budget in (1.2e6, 3.4e6, 5e6, 2e7):
        fit = k_for_budget(p, steps, v, budget)
        assert steps * expected_samples(p, fit.k, v) <= budget
        assert steps * expected_samples(p, fit.k + 1, v) > budget
        assert fit.p_full == pytest.approx(p_full(p, fit.k, steps))
    k, full = k_for_budget(p, steps, v, 5e6)
    assert (k, round(full, 6)) == (4, 0.999975)
    with pytest.raises(ConfigError, match="max_samples"):
        k_for_budget(p, steps, v, 1e6)


def test_estimate_p_wilson_interval() -> None:
    est = estimate_p(9978, 10000)
    assert est.p == 0.9978 and est.low < est.p < est.high
    assert (round(est.low, 4), round(est.high, 4)) == (0.9967, 0.9985)
    perfect = estimate_p(50, 50)
    assert perfect.p == 1.0 and perfect.high == 1.0 and 0.9 < perfect.low < 1.0
    assert estimate_p(0, 50).low == 0.0
    wider = estimate_p(9978, 10000, confidence=0.99)
    assert wider.low < est.low and wider.high > est.high


def test_collisions_against_independence() -> None:
    assert expected_collisions(10000, 0.99) == pytest.approx(1.0)
    assert collision_test(0, 10000, 0.99).p_value == 1.0
    # Poisson(1) tails, which Binomial(10000, 1e-4) matches to about 4 digits.
    assert collision_test(1, 10000, 0.99).p_value == pytest.approx(1 - math.exp(-1), rel=1e-3)
    tail5 = 1 - math.exp(-1) * sum(1 / math.factorial(i) for i in range(5))
    assert collision_test(5, 10000, 0.99).p_value == pytest.approx(tail5, rel=1e-3)
    assert collision_test(3000, 10**6, 0.95).p_value < 1e-20  # 2500 expected: correlated
    assert 0.3 < collision_test(2500, 10**6, 0.95).p_value < 0.6


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: p_sub(1.5, 3), "p"),
        (lambda: p_sub(float("nan"), 3), "p"),
        (lambda: p_sub(True, 3), "p"),
        (lambda: p_sub(0.7, 0), "k"),
        (lambda: p_sub(0.7, 2.0), "k"),
        (lambda: p_full(0.7, 3, 0), "steps"),
        (lambda: p_full(0.7, 3, 10, m=0), "m"),
        (lambda: k_min(0.5, 100, 0.9), "p"),
        (lambda: k_min(0.3, 100, 0.9), "p"),
        (lambda: k_min(0.9, 100, 1.0), "target"),
        (lambda: k_min(0.9, 100, 0.0), "target"),
        (lambda: k_min(0.9, 100, 1.2), "target"),
        (lambda: expected_samples(0.7, 3, 0.0), "v"),
        (lambda: expected_cost(0.7, 3, 10, tokens_per_sample=-1), "tokens_per_sample"),
        (lambda: expected_cost(0.7, 3, 10, price_per_million_tokens=1.0), "tokens_per_sample"),
        (lambda: k_for_budget(0.7, 10, 1.0, -5), "max_samples"),
        (lambda: monte_carlo(0.7, 3, 1), "trials"),
        (lambda: estimate_p(11, 10), "correct"),
        (lambda: estimate_p(1, 0), "total"),
        (lambda: estimate_p(5, 10, confidence=1.0), "confidence"),
        (lambda: expected_collisions(-1, 0.9), "states"),
        (lambda: collision_test(11, 10, 0.9), "observed"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_argument(call, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must") as info:
        call()
    assert isinstance(info.value, ConfigError)
