"""Estimation across agents: per-agent p-hat, collisions within and across agents, and the recommended mix."""

import maker
from maker.estimate import estimate
from maker.estimate_agents import across_agents
from maker.mixing import AgentMix
from maker.redflag import RedFlagReason
from tests.test_mixing import _ByAgent
from tests.toy import Countdown

RIGHT, FLAG = (True, 1), RedFlagReason.MALFORMED


def _states(a_fails, b_fails, count=200):
    """Four samples a state, A, B, A, B; A is wrong (the same way) on ``a_fails``, B on ``b_fails``."""
    out = []
    for s in range(count):
        a = (False, "a-wrong") if s in a_fails else RIGHT
        b = (False, "b-wrong") if s in b_fails else RIGHT
        out.append([("A", a), ("B", b), ("A", a), ("B", b)])
    return out


def test_agents_that_fail_on_different_states_collide_only_within_themselves_and_the_mix_is_recommended():
    report = across_agents(_states(range(0, 10), range(10, 20)), AgentMix.parse("A,B"), steps=1000, target=0.95)
    a, b = report.agents
    assert (a.agent, a.samples, a.valid, a.correct) == ("A", 400, 400, 380)
    assert (a.pairs, a.collisions, a.collisions_same) == (200, 10, 10)
    assert a.collisions > a.expected_collisions  # state-tied errors: far above i.i.d.
    (cross,) = report.crosses
    assert (cross.pairs, cross.collisions, cross.collisions_same) == (200, 0, 0)
    assert report.all_wrong_states == 0  # no state where both agents fail
    assert report.recommended == "A,B" and report.recommended_k >= 1
    assert report.lock_in_rates["A,B"] < report.lock_in_rates["A"] == report.lock_in_rates["B"]


def test_agents_that_fail_together_gain_nothing_from_a_mix():
    report = across_agents(_states(range(10), range(10)), AgentMix.parse("A,B"), steps=1000, target=0.95)
    assert report.crosses[0].collisions == 10 and report.all_wrong_states == 10
    assert report.lock_in_rates["A,B"] > 0  # they still lock in together (different answers here)


def test_red_flags_count_against_v_not_p_and_no_valid_pair_means_no_recommendation():
    flagged = [[("A", FLAG), ("B", RIGHT), ("A", FLAG), ("B", FLAG)] for _ in range(20)]
    report = across_agents(flagged, AgentMix.parse("A,B"), steps=100, target=0.95)
    a, b = report.agents
    assert a.valid == 0 and a.p is None and a.v == 0.0
    assert b.v == 0.5 and b.pairs == 0
    assert report.recommended is None


def test_estimate_with_a_mix_draws_each_state_as_a_mixed_run_and_reports_by_agent():
    report = estimate(Countdown(start=50), _ByAgent(), samples=40, per_state=4, mix="right,wrong")
    right, wrong = report.agents.agents
    assert right.p == 1.0 and wrong.p is not None and wrong.p < 0.1
    assert right.samples == wrong.samples == 80
    assert report.agents.recommended == "right"
    assert "recommended mix          --mix right" in report.to_table()
    assert report.to_json()["agents"]["agents"][0]["agent"] == "right"


def test_without_a_mix_the_report_has_no_agents_part():
    task = Countdown(start=30)
    report = estimate(task, maker.SimulatedBackend(task, error_rate=0.0), samples=20)
    assert report.agents is None and report.same_wrong_states == 0
