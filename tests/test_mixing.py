"""Mixed-agent voting: the cycle decides who draws each sample; with agreement (the default) only a
reply every voting agent gives can win, without it every vote counts alike; the statistics keep
each agent's part; a plan's chains can have mixes of their own."""

import json
import re

import pytest

import maker
from maker import ScriptedBackend
from maker.config import make_config
from maker.errors import ConfigError
from maker.mixing import AgentMix
from tests.toy import Countdown


def test_the_cycle_names_the_agent_of_each_sample_and_its_distinct_agents_in_order():
    mix = AgentMix.parse("A, B,B")
    assert mix.cycle == ("A", "B", "B") and mix.agents == ("A", "B") and str(mix) == "A,B,B"
    assert [mix.agent_for(i) for i in range(7)] == ["A", "B", "B", "A", "B", "B", "A"]
    for bad in ("", "A,,B", " "):
        with pytest.raises(ValueError, match="empty|at least one"):
            AgentMix.parse(bad)


def test_a_first_round_is_a_greedy_vote_from_the_first_agent_then_one_request_per_agent_with_its_own_seed():
    config = make_config(k=3, first_temperature=0.0, temperature=1.0)
    mix = AgentMix.parse("A,B")
    first = mix.round_requests(config, "p", 100, 3, drawn=0, rounds=0)
    assert [(r.agent, r.n, r.temperature) for r in first] == [("A", 1, 0.0), ("B", 1, 1.0), ("A", 1, 1.0)]
    later = mix.round_requests(config, "p", 100, 3, drawn=3, rounds=1)  # samples 3, 4, 5: B, A, B
    assert [(r.agent, r.n, r.temperature) for r in later] == [("B", 2, 1.0), ("A", 1, 1.0)]
    seeds = [r.seed for r in first + later]
    assert len(set(seeds)) == len(seeds)


class _ByAgent(maker.Backend):
    """Agent "right" counts down; agent "wrong" always says 0 (a valid, wrong vote); "broken" writes
    nonsense; "stubborn" says 0 too, except on every 4th of its samples for a prompt, where it is right."""

    def __init__(self):
        self.requests = []
        self.stubborn_drawn = {}

    async def sample(self, request):
        self.requests.append(request)
        state = int(re.search(r"-?\d+", request.prompt).group())
        if request.agent == "stubborn":
            replies = []
            for _ in range(request.n):
                drawn = self.stubborn_drawn[request.prompt] = self.stubborn_drawn.get(request.prompt, 0) + 1
                replies.append(maker.Sample(str(state - 1) if drawn % 4 == 0 else "0", 1))
            return replies
        text = {"right": str(state - 1), "wrong": "0", "broken": "no idea"}[request.agent]
        return [maker.Sample(text, 1)] * request.n


def test_with_agreement_one_agents_repeated_wrong_reply_cannot_win():
    # Each step from 4, 3, 2: "stubborn" says 0 three times in four; the plain race would be a coin toss.
    backend = _ByAgent()
    result = maker.run(Countdown(start=4), backend, k=3, mix="right,stubborn", checks=False)
    assert result.solved and result.errors == 0
    by_agent = result.statistics.by_agent
    assert by_agent["stubborn"]["wrong_votes"] > 0 and by_agent["right"]["wrong_votes"] == 0
    # Step 0: 4 right and 3 wrong samples, then stubborn's 4th (right) brings agreement: 5 ahead of no agreed rival.
    assert result.statistics.samples_per_step > 3


def test_the_journal_gives_the_winners_votes_first_even_when_a_reply_only_one_agent_gave_had_more(tmp_path):
    journal = tmp_path / "run.jsonl"
    result = maker.run(Countdown(start=2), _ByAgent(), k=4, mix="stubborn,stubborn,right", checks=False, journal=journal)
    assert result.solved
    first = json.loads(journal.read_text().splitlines()[1])
    assert first["candidate"] == 1  # right: 2 -> 1
    # Stubborn says 0 five times (agent "right" never does); 1 gets right's 3 votes and stubborn's 4th sample.
    assert first["votes"] == [4, 5] and first["samples"] == 9


def test_with_agreement_agents_that_never_agree_fail_the_step_instead_of_committing_either():
    with pytest.raises(maker.StepFailed):
        maker.run(Countdown(start=3), _ByAgent(), k=2, mix="right,wrong", checks=False, max_samples_per_step=30)
    # The same mix without agreement commits a reply (here the right one: it draws the greedy first vote).
    result = maker.run(Countdown(start=3), _ByAgent(), k=2, mix=AgentMix.parse("right,wrong,right", agreement=False),
                       checks=False)
    assert result.steps == 3


def test_without_agreement_a_mixed_race_counts_every_vote_alike_and_keeps_statistics_per_agent():
    backend = _ByAgent()
    mix = AgentMix.parse("right,wrong,right,broken", agreement=False)
    result = maker.run(Countdown(start=4), backend, k=2, mix=mix, checks=False)
    # A step from 4: right says 3, wrong 0 (a tie), then right 3 and broken red-flagged, then right again: 3 leads by 2.
    assert result.solved and result.errors == 0
    assert {r.agent for r in backend.requests} == {"right", "wrong", "broken"}
    by_agent = result.statistics.by_agent
    assert set(by_agent) == {"right", "wrong", "broken"}
    assert by_agent["broken"]["red_flags"] == by_agent["broken"]["samples"] > 0
    assert by_agent["right"]["winning_votes"] == by_agent["right"]["valid_votes"] > 0
    # "wrong" says 0: right on the last step (1 -> 0), wrong on the others; the oracle counts that after the fact.
    assert 0 < by_agent["wrong"]["wrong_votes"] < by_agent["wrong"]["valid_votes"]
    assert by_agent["right"]["wrong_votes"] == 0
    total = sum(c["samples"] for c in by_agent.values())
    assert total == result.statistics.samples
    assert result.summary()["by_agent"]["broken"]["red_flags"] == by_agent["broken"]["red_flags"]


def test_a_task_can_name_its_own_mix_and_a_runs_mix_overrides_it():
    class Mixed(Countdown):
        mix = ("right", "stubborn")

    backend = _ByAgent()
    assert maker.run(Mixed(start=3), backend, k=2, checks=False).solved
    assert {r.agent for r in backend.requests} == {"right", "stubborn"}
    backend = _ByAgent()
    maker.run(Mixed(start=3), backend, k=2, mix="right")
    assert {r.agent for r in backend.requests} == {"right"}
    backend = _ByAgent()  # a run's agent beats the task's mix too
    maker.run(Mixed(start=3), backend, k=2, agent="right")
    assert {r.agent for r in backend.requests} == {"right"}


def test_a_backend_that_returns_another_number_of_samples_than_asked_is_a_bug_it_is_told_of():
    class Short(_ByAgent):
        async def sample(self, request):
            return (await super().sample(request))[:1]

    with pytest.raises(maker.BackendCodeError, match="1 samples for a request of n = 2"):
        maker.run(Countdown(start=3), Short(), k=3, mix="right")


def test_the_cli_refuses_a_mix_on_the_simulated_backend(capsys):
    from maker.cli import main

    assert main(["run", "hanoi", "--disks", "3", "--backend", "sim", "--mix", "a,b"]) == 2
    assert "--mix needs real microagents" in capsys.readouterr().err
    assert main(["run", "hanoi", "--disks", "3", "--backend", "sim", "--no-mix-agreement"]) == 2
    assert "--no-mix-agreement is used only with --mix" in capsys.readouterr().err


def test_without_a_mix_requests_and_statistics_are_as_before():
    backend = ScriptedBackend(reply_for=lambda r: str(int(re.search(r"\d+", r.prompt).group()) - 1))
    result = maker.run(Countdown(start=3), backend, k=2)
    assert result.solved and dict(result.statistics.by_agent) == {}
    assert {r.agent for r in backend.requests} == {None}


def test_a_mix_and_a_different_agent_together_are_refused():
    with pytest.raises(ConfigError, match="not both"):
        maker.run(Countdown(start=3), _ByAgent(), mix="right,wrong", agent="wrong")
    with pytest.raises(ConfigError, match="invalid mix"):
        maker.run(Countdown(start=3), _ByAgent(), mix="right,,wrong")


def test_statistics_with_agents_merge_agent_by_agent():
    from maker.statistics import RunStatistics

    a = RunStatistics(samples=3, by_agent={"x": {"samples": 2}, "y": {"samples": 1}})
    b = RunStatistics(samples=2, by_agent={"x": {"samples": 1, "red_flags": 1}})
    merged = a.merge(b)
    assert merged.samples == 5
    assert {k: dict(v) for k, v in merged.by_agent.items()} == {"x": {"samples": 3, "red_flags": 1}, "y": {"samples": 1}}
