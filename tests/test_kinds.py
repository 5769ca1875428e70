"""k per kind of step (maker.kinds): the allocation reaches its bound for fewer samples, the bound holds
on the real race (Monte Carlo), and bad input is refused by name."""

import random

import pytest

from maker.errors import ConfigError
from maker.kinds import KindMeasure, allocate, p_full_by_kind, parse_k_by_kind, samples_per_step
from maker.scaling import p_sub, simulate_race


def test_a_hard_rare_kind_takes_the_votes_and_the_bulk_needs_fewer():
    kinds = {"easy": KindMeasure(100_000, 0.99999, 0.9999), "hard": KindMeasure(200, 0.95, 0.9)}
    uniform = dict.fromkeys(kinds, 3)
    bound = p_full_by_kind(kinds, uniform)
    plan = allocate(kinds, bound)
    assert plan.p_full >= bound
    assert plan.k_by_kind["easy"] < 3 < plan.k_by_kind["hard"]
    assert plan.samples_per_step < samples_per_step(kinds, uniform)


def test_each_k_is_the_smallest_that_keeps_the_bound():
    kinds = {"a": KindMeasure(5000, 0.99, 0.98), "b": KindMeasure(300, 0.9, 0.85), "c": KindMeasure(40, 0.8, 0.7)}
    plan = allocate(kinds, 0.99)
    assert plan.p_full >= 0.99
    for kind, k in plan.k_by_kind.items():
        if k > 1:
            assert p_full_by_kind(kinds, {**plan.k_by_kind, kind: k - 1}) < 0.99, kind


def test_the_bound_holds_on_the_real_race():
    """Whole tasks of two kinds, each step a real VoteRace at p = the kind's low end: the share that comes
    out right is at least the stated bound (within three standard errors)."""
    kinds = {"many": KindMeasure(60, 0.9, 0.9), "few": KindMeasure(8, 0.75, 0.75)}
    plan = allocate(kinds, 0.9)
    assert abs(p_full_by_kind(kinds, plan.k_by_kind) - plan.p_full) < 1e-12
    rng, trials, right = random.Random(7), 3000, 0
    for _ in range(trials):
        right += all(simulate_race(m.p_low, plan.k_by_kind[kind], rng)[0]
                     for kind, m in kinds.items() for _ in range(m.steps))
    share = right / trials
    exact = 1.0
    for kind, m in kinds.items():
        exact *= p_sub(m.p_low, plan.k_by_kind[kind]) ** m.steps
    sigma = (exact * (1 - exact) / trials) ** 0.5
    assert share >= plan.p_full - 3 * sigma, (share, plan)
    assert abs(share - exact) < 4 * sigma  # one wrong alternative: the bound is the race's own success


@pytest.mark.parametrize("measures,target,message", [
    ({"a": KindMeasure(10, 0.6, 0.45)}, 0.9, "kind 'a': the low end of p's interval is 0.45"),
    ({"a": KindMeasure(10, 0.99, 0.98)}, 1.0, "target must be in (0, 1)"),
    ({}, 0.9, "no kind of step was measured"),
])
def test_plans_that_cannot_be_made_say_why(measures, target, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        allocate(measures, target)


def test_k_by_kind_text():
    assert parse_k_by_kind("disk1=2,disks13+=4") == {"disk1": 2, "disks13+": 4}
    for text, message in [("disk1", "KIND=K pairs"), ("disk1=two", "whole number"), ("disk1=0", ">= 1"),
                          ("a=1,a=2", "twice"), ("=2", "KIND=K pairs")]:
        with pytest.raises(ConfigError, match=message):
            parse_k_by_kind(text)
