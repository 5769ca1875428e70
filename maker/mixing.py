"""Votes drawn from several microagents: which agent draws each sample of a step.

Voting removes the errors that samples make independently. A model's errors are tied to states:
on a hard state the same wrong reply comes back again and again, and a vote can lock it in. Two
different microagents (a specialist and an adapter on the shared base, or adapters trained from
different data) tend to fail on different states, so a race whose votes come from both should
lock in fewer errors per sample spent.

An ``AgentMix`` is a cycle of agent names. The policy, stated once here: **sample i of a step
(counted from 0 across all of the step's rounds) is drawn by entry i mod len(cycle)**. Sample 0 is
the step's first vote, drawn at the first temperature (greedy by default), so the cycle's first
entry should be the strongest agent. ``A,B`` alternates; ``A,B,B`` gives B two votes in three.
The run's statistics keep per-agent counts (``maker.statistics``).

Which candidate may win, stated once here: by default (``agreement=True``) a step's race is an
``AgreeingRace`` (``maker.voting``): every vote counts alike, but only a candidate that every
voting agent has voted for can win. Without it an agent that is wrong on a state again and again
turns the race into a coin toss against the agent that is right: on one step of a 20-disk run
with checks off, the specialist gave the same wrong reply in 193 of 200 samples and the adapter
the right one in 186 of 200, and the plain race locked in the wrong one 27 votes to 24.
``agreement=False`` (``maker run --no-mix-agreement``) counts every vote for every candidate.

Every chain's agents are a mix: one agent is a cycle of one (``AgentMix.one``), whose entry may be
None, the backend's default microagent. Which mix serves a chain is decided once, by
``maker.agents.chain_agents``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from maker.config import RunConfig
from maker.errors import ConfigError
from maker.samples import SampleRequest
from maker.voting import AgreeingRace, Rule, VoteRace


class AgentMix(BaseModel):
    """The cycle of agents that draws a step's samples (see the module's policy)."""

    model_config = ConfigDict(frozen=True)

    cycle: tuple[str | None, ...]  # None (a cycle of one only): the backend's default microagent
    agreement: bool = True  # only a candidate every voting agent has voted for can win (the module's rule)

    @field_validator("cycle")
    @classmethod
    def _names(cls, cycle: tuple[str | None, ...]) -> tuple[str | None, ...]:
        if not cycle:
            raise ValueError("a mix needs at least one agent")
        if len(cycle) > 1 and None in cycle:
            raise ValueError("only a single agent may be the backend's default (None)")
        if blank := [i for i, name in enumerate(cycle) if name is not None and not name.strip()]:
            raise ValueError(f"agent names must not be empty (entry {blank[0]} is)")
        return cycle

    @classmethod
    def one(cls, agent: str | None) -> AgentMix:
        """A single agent as a cycle of one (None: the backend's default microagent)."""
        return cls(cycle=(agent,))

    @classmethod
    def parse(cls, text: str | Sequence[str], *, agreement: bool = True) -> AgentMix:
        """``"A,B,B"`` (or a sequence of names) as a mix."""
        names = text.split(",") if isinstance(text, str) else list(text)
        return cls(cycle=tuple(name.strip() for name in names), agreement=agreement)

    @classmethod
    def coerce(cls, mix: AgentMix | str | Sequence[str], where: str = "mix", *, agreement: bool = True) -> AgentMix:
        """A mix from what a user wrote (``agreement`` for a mix given as names); a bad one is a
        ``ConfigError`` naming ``where`` it came from."""
        if isinstance(mix, AgentMix):
            return mix
        try:
            return cls.parse(mix, agreement=agreement)
        except ValidationError as exc:
            raise ConfigError(f"invalid {where} {mix!r}: {exc.errors()[0]['msg']}") from None

    @cached_property  # read on every step
    def agents(self) -> tuple[str | None, ...]:
        """The distinct agents, in the order they first draw."""
        return tuple(dict.fromkeys(self.cycle))

    @cached_property
    def mixed(self) -> bool:
        """Whether several agents draw (then a step keeps each agent's part: ``StepDecision.by_agent``)."""
        return len(self.agents) > 1

    @property
    def first(self) -> str | None:
        """The agent of each step's first vote, whose settings the chain runs with."""
        return self.cycle[0]

    def agent_for(self, sample: int) -> str | None:
        return self.cycle[sample % len(self.cycle)]

    def __str__(self) -> str:
        return ",".join(str(name) for name in self.cycle)

    def race(self, k: int, rule: Rule) -> VoteRace:
        """A step's race under this mix's rule."""
        return AgreeingRace(k, rule) if self.agreement and self.mixed else VoteRace(k, rule)

    def round_requests(self, config: RunConfig, prompt: str, seed: int, need: int, *, drawn: int, rounds: int,
                       draft: Callable[[str], str | None] | None = None, stop: tuple[str, ...] = ()) -> list[SampleRequest]:
        """The requests of one round: samples ``drawn`` .. ``drawn + need - 1`` of the step, one
        request per agent (and the greedy first vote as a request of its own), agents in cycle order.
        Each request has a seed of its own: the round's and the agent's place among ``agents``.
        ``stop``: the strings that end a reply (``maker.prompting``)."""
        if not self.mixed:  # the common case, kept short: every step of a one-agent run comes here
            agent, later = self.cycle[0], seed + 1 + rounds
            if drawn or config.first_temperature == config.temperature:
                temperature = config.temperature if drawn else config.first_temperature
                return [SampleRequest(prompt, need, temperature, config.cap, later, agent, draft, stop)]
            greedy = SampleRequest(prompt, 1, config.first_temperature, config.cap, seed, agent, draft, stop)
            if need == 1:
                return [greedy]
            return [greedy, SampleRequest(prompt, need - 1, config.temperature, config.cap, later, agent, draft, stop)]
        requests: list[SampleRequest] = []
        start, end = drawn, drawn + need
        if drawn == 0 and config.first_temperature != config.temperature:
            requests.append(SampleRequest(prompt, 1, config.first_temperature, config.cap, seed, self.cycle[0], draft, stop))
            start += 1
        counts = Counter(self.agent_for(sample) for sample in range(start, end))  # agents in the order they first draw
        place = {agent: i for i, agent in enumerate(self.agents)}
        for agent, n in counts.items():
            agent_seed = seed + 1 + rounds * len(place) + place[agent]
            requests.append(SampleRequest(prompt, n, config.temperature, config.cap, agent_seed, agent, draft, stop))
        return requests
