"""The engine: carries out one chain of a task step by step, each step decided by a vote.

For one step: render the prompt, draw the first k samples at once (the first greedy, the rest at
the run's temperature; k is the step kind's own when ``RunConfig.k_by_kind`` names it), discard
red-flagged replies (``maker.redflag.RedFlagJudge``), vote, and keep drawing in rounds until the
race is decided or the per-step cap is hit (``StepFailed``, never a silent "take the leader"). Each
round draws exactly the votes that could still decide the race, so no sample drawn is ever surplus.
A step that stays undecided climbs the run's escalation ladder, if it has one (``_Climb``;
``maker.escalation`` holds the rule). The engine counts nothing itself: it emits events
(``maker.events``) to the run's observers, and never reads the oracle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from maker.backends.base import Backend, draw
from maker.config import RunConfig
from maker.errors import StepError, StepFailed
from maker.escalation import Escalation
from maker.events import AgentVotes, ChainInfo, Emitter, StepDecision
from maker.mixing import AgentMix
from maker.prompting import prompter, stop_for
from maker.redflag import Flagged, RedFlagJudge
from maker.samples import SampleRequest
from maker.statistics import RunStatistics
from maker.task import JOURNAL_HINT, Task, journal_round_trip
from maker.voting import AgreeingRace, VoteRace

ProgressCallback = Callable[[RunStatistics], None]
log = logging.getLogger("maker")
# A chain hands control back to the event loop at least this often (seconds), so that other tasks run even
# on a backend that never waits for I/O. Ctrl-C does not wait for it: each step checks ``stop``.
YIELD_EVERY = 0.1
FLAG_EXAMPLES = 3  # discarded replies a failed step shows
WITNESS_SEED = 0x5EED  # the escalation witness's seed is the step's plus this: a stream apart from the agents' own


@dataclass(frozen=True)
class RunResult:
    """What a run did: the summary the CLI prints is made from this."""

    task: str
    params: dict[str, Any]
    backend: str
    simulated: bool
    config: RunConfig
    solved: bool
    final_state: Any
    statistics: RunStatistics
    resumed_steps: int = 0
    journal: str | None = None
    stopped_reason: str | None = None  # why an unsolved run stopped early, if it did
    unsolved_reason: str | None = None  # why the run is not solved (None: it is)
    answer: Any = None  # Task.answer of the final state, as JSON data
    has_check: bool = True  # whether the task defines a check (config.checks applies only then)
    depth: int = 0
    nodes: list[dict[str, Any]] = field(default_factory=list)  # per subtask: name, steps, seconds, reruns

    @property
    def steps(self) -> int:
        return self.statistics.steps

    @property
    def errors(self) -> int | None:
        return self.statistics.errors

    def summary(self) -> dict[str, Any]:
        config = self.config
        return {"task": self.task, "params": self.params, "backend": self.backend, "simulated": self.simulated,
                "solved": self.solved, "k": config.k, "rule": config.rule, "checks": config.checks and self.has_check,
                "config": config.model_dump(mode="json"), **self.statistics.to_json(), "resumed_steps": self.resumed_steps,
                "journal": self.journal, "stopped_reason": self.stopped_reason,
                "unsolved_reason": self.unsolved_reason, "answer": self.answer, "depth": self.depth,
                "subtasks": len(self.nodes)}


def step_seed(base: int, step: int) -> int:
    """The seed of a step's first request; later requests of the step count up from it."""
    return (base * 1_000_003 + step * 131) & 0x7FFFFFFF


def draft_hook(task: Task, state: Any) -> Callable[[str], str | None] | None:
    """``task.draft`` for this state, if the task guesses replies at all."""
    return partial(task.draft, state) if task.has_draft else None


def _votes(counts: dict[Any, int], winner: Any) -> list[int]:
    """The winner's votes, then the others' from most to fewest (the journal's ``votes``). Under an
    agreeing race the winner may have fewer votes than a reply only one agent gave."""
    if len(counts) == 1:  # a unanimous step, most steps of a good model
        return [counts[winner]]
    return [counts[winner], *sorted((n for c, n in counts.items() if c != winner), reverse=True)]


class Engine:
    """Decides and commits the steps of one chain with one backend under one config."""

    def __init__(self, chain: ChainInfo, backend: Backend, config: RunConfig, emit: Emitter,
                 stop: Callable[[], int] = lambda: 0) -> None:
        # stop(): non-zero once the run is being cancelled (Ctrl-C cancels the run's task, and a chain that
        # never waits for I/O would otherwise run on until its next await that suspends).
        self.chain, self.backend, self.config, self.emit, self.stop = chain, backend, config, emit, stop
        self.judge = RedFlagJudge(chain.task, max_tokens=config.max_tokens, checks=config.checks)
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.drafts = chain.task.has_draft  # read once: decide runs a million times a run
        self.prompt = prompter(chain.task, config.few_shot, config.seed)
        self.stop_strings = stop_for(self.prompt, config.stop)
        self.kinds = chain.task.has_kinds
        self.k_by_kind = config.k_by_kind or {}
        self.escalation = config.escalation

    def kind(self, state: Any, step: int) -> str | None:
        """The step's kind (``Task.kind``), or None when the task has one kind."""
        if not self.kinds:
            return None
        try:
            return self.chain.task.kind(state)
        except Exception as exc:
            raise StepError(f"task.kind raised {type(exc).__name__}: {exc}", step=step, state=state) from exc

    async def decide(self, state: Any, step: int) -> StepDecision:
        """Sample, red-flag and vote until one candidate wins (or the cap is hit); a step that stays
        undecided climbs the escalation ladder when the run has one (``maker.escalation``)."""
        chain, emit, cap = self.chain, self.emit, self.config.max_samples_per_step
        try:
            prompt = self.prompt(state)
        except Exception as exc:
            raise StepError(f"task.prompt raised {type(exc).__name__}: {exc}", step=step, state=state) from exc
        for hook in emit.step_started:
            hook(chain, step, state, prompt)
        agents = chain.agents
        kind = self.kind(state, step)
        race = agents.race(self.k_by_kind.get(kind, self.config.k) if kind is not None else self.config.k, self.config.rule)
        ladder = None if self.escalation is None else _Climb(self, state, step, kind, prompt)
        guess = draft_hook(chain.task, state) if self.drafts else None
        judge = self.judge.judge
        memo: dict[str, Any] = {}  # reply text -> verdict: the samples of a step often agree word for word
        flags: list[Flagged] = []  # this step's discarded replies, for the error if it fails
        drawn = rounds = 0
        seed = step_seed(self.config.seed, step)
        # With several agents, what each drew and voted (the decision carries it; only the engine knows who drew what).
        by_agent = {a: AgentVotes() for a in agents.agents} if agents.mixed else None
        while True:
            if ladder is not None:
                agents, race, by_agent = ladder.climb(drawn, agents, race, by_agent)
                prompt = ladder.prompt
                if race.winner is not None:  # the agent rung's race, its votes replayed, is decided by the witness's
                    return StepDecision(race.winner, _votes(race.counts, race.winner), drawn, rounds, by_agent=by_agent,
                                        kind=kind, escalated=ladder.samples, witness=ladder.outcome)
            need = min(race.votes_needed(), cap - drawn)
            if need <= 0:
                raise self._failed(step, drawn, race, flags, () if ladder is None else ladder.climbed)
            requests = agents.round_requests(self.config, prompt, seed, need, drawn=drawn, rounds=rounds, draft=guess,
                                             stop=self.stop_strings)
            # The ladder's witness (maker.escalation): one sample of the agent rung's agent beside the first round.
            witnessing = ladder is not None and not rounds and ladder.witnesses(agents)
            asked = [*requests, ladder.witness_request(self.config, prompt, seed, guess, self.stop_strings)] \
                if witnessing else requests  # type: ignore[union-attr]
            samples = await draw(self.backend, asked, step=step)
            rounds += 1
            drawn += len(samples)
            for hook in emit.sampled:
                hook(chain, step, samples)
            if witnessing:  # drawn last; it votes only once it is in the race or agrees with the winner
                *samples, witness = samples
                verdict = judge(state, witness, memo, step=step)
                if verdict.__class__ is Flagged:
                    self._discard(step, verdict, flags)
                ladder.witnessed(verdict)  # type: ignore[union-attr]
            # Who drew each sample (requests' samples come back in request order), with several agents.
            voters = None if by_agent is None else [r.agent for r in requests for _ in range(r.n)]
            if ladder is not None:
                ladder.drew(len(samples))
            for i, sample in enumerate(samples):
                verdict = judge(state, sample, memo, step=step)
                part = None if voters is None else by_agent[voters[i]]  # type: ignore[index]
                if part is not None:
                    part.samples += 1
                if verdict.__class__ is Flagged:
                    self._discard(step, verdict, flags)
                    if part is not None:
                        part.red_flags += 1
                    continue
                if part is not None:
                    part.votes.append(verdict)
                voter = None if voters is None else voters[i]
                if ladder is not None and ladder.keeps_votes:
                    ladder.votes.append((verdict, voter if voter is not None else agents.first))
                winner = race.add(verdict) if voter is None else race.add(verdict, voter)  # verdicts are hashable
                if winner is not None:  # a round draws what can decide, at most: its last vote, or one that brings agreement
                    counts = race.counts
                    if ladder is not None and ladder.witness is not None:  # a witness outside the race has its say
                        if not ladder.confirms(winner):
                            break  # the step climbs to the agent rung before its next round
                        counts, by_agent = ladder.take_in(counts, winner, by_agent, agents, drawn)
                    return StepDecision(winner, _votes(counts, winner), drawn, rounds, by_agent=by_agent, kind=kind,
                                        escalated=None if ladder is None else ladder.samples or None,
                                        witness=None if ladder is None else ladder.outcome)

    def _discard(self, step: int, flagged: Flagged, flags: list[Flagged]) -> None:
        """A red-flagged reply: kept for the step's error if it fails, logged with --verbose, and reported."""
        flags.append(flagged)
        if self.debug:
            log.debug("step %d: red flag %s: %s; reply %r", step, flagged.reason.value, flagged.detail, flagged.text)
        for hook in self.emit.red_flag:
            hook(self.chain, step, flagged)

    @staticmethod
    def _failed(step: int, drawn: int, race: VoteRace, flags: list[Flagged], climbed: Sequence[str] = ()) -> StepFailed:
        by_reason: dict[Any, Flagged] = {}
        by_detail: dict[Any, Flagged] = {}
        for flag in flags:
            by_reason.setdefault(flag.reason, flag)
            by_detail.setdefault((flag.reason, flag.detail), flag)
        # One reply per reason first, then one per distinct complaint, then any; no reply twice.
        examples = list(dict.fromkeys([*by_reason.values(), *by_detail.values(), *flags]))[:FLAG_EXAMPLES]
        return StepFailed(step=step, samples=drawn, counts=race.counts, red_flags=len(flags),
                          flag_reasons=Counter(flag.reason.value for flag in flags), examples=examples, escalated=climbed)

    async def run_chain(self, state: Any, *, first_step: int = 0, max_steps: int | None = None) -> tuple[Any, int]:
        """Decide and commit steps from ``state`` until the task is done or ``max_steps`` steps
        are committed. Returns the final state and the number of steps committed."""
        task, chain, emit = self.chain.task, self.chain, self.emit
        step, last = first_step, None if max_steps is None else first_step + max_steps
        yielded, stop = time.perf_counter(), self.stop
        while step != last and not task.is_done(state):
            if stop():
                raise asyncio.CancelledError
            if time.perf_counter() - yielded > YIELD_EVERY:
                await asyncio.sleep(0)
                yielded = time.perf_counter()
            decision = await self.decide(state, step)
            if step == first_step and (problem := journal_round_trip(task, decision.candidate)) is not None:
                raise StepError(f"the winning candidate {decision.candidate!r} does not survive the journal: {problem}; "
                                f"{JOURNAL_HINT}", step=step, state=state)
            try:
                after = task.apply(state, decision.candidate)
            except Exception as exc:
                raise StepError(f"task.apply raised {type(exc).__name__}: {exc} for candidate {decision.candidate!r}",
                                step=step, state=state) from exc
            for hook in emit.step_decided:  # the journal's write here is the commit
                hook(chain, step, state, decision)
            state = after
            step += 1
        return state, step - first_step


class _Climb:
    """One step's place on the escalation ladder (``maker.escalation``): the rung it is on, the prompt it asks
    with, the samples drawn on each rung, and every vote with its agent (a race rebuilt for two agents replays them)."""

    def __init__(self, engine: Engine, state: Any, step: int, kind: str | None, prompt: str) -> None:
        self.engine, self.state, self.step, self.prompt, self.original = engine, state, step, prompt, prompt
        self.ladder: Escalation = engine.escalation  # type: ignore[assignment]
        self.rung, self.since = -1, 0  # the rung's index in the ladder (-1: not on it yet), samples drawn before it
        self.start = self.ladder.first_rung(kind)  # a hard kind goes straight to the agent rung
        self.samples: dict[str, int] = {}  # rung -> samples drawn on it
        self.climbed: list[str] = []
        self.votes: list[tuple[Any, str | None]] = []  # kept only while an agent rung may still need them
        self.keeps_votes = "agent" in self.ladder.ladder
        self.variant = 0  # the paraphrase asked last
        self.helper = self.ladder.agent
        self.witness: AgentVotes | None = None  # the witness's part while it is drawn and outside the race
        self.outcome: str | None = None  # what the witness did (StepDecision.witness); None: none drawn

    def climb(self, drawn: int, agents: AgentMix, race: VoteRace,
              by_agent: dict[str | None, AgentVotes] | None) -> tuple[AgentMix, VoteRace, dict[str | None, AgentVotes] | None]:
        """Climb as many rungs as the rule says before this round; then pick this round's prompt."""
        rungs, skip = self.ladder.ladder, False
        while True:
            if self.rung < self.start:  # a hard kind: straight to its rung
                self.rung = self.start
            elif self.rung + 1 < len(rungs) and (skip or self.ladder.climbs(drawn - self.since)):
                self.rung += 1
            else:
                break
            self.since, name = drawn, rungs[self.rung]
            skip = name == "paraphrase" and not self.engine.chain.task.has_paraphrase
            if skip:  # nothing to reword with: on to the next rung at once
                continue
            self.climbed.append(name)
            self.samples.setdefault(name, 0)
            if name == "agent":
                agents, race, by_agent = self._second_agent(agents, race, by_agent, drawn)
            elif name == "k":
                race.k *= self.ladder.k_factor
            for hook in self.engine.emit.step_escalated:
                hook(self.engine.chain, self.step, self.state, name, self.prompt)
        if self.climbed and self.climbed[-1] == "paraphrase":  # rewordings while on their rung; later rungs ask as before
            self._next_wording()
        elif self.prompt is not self.original:
            self.prompt = self.original
        return agents, race, by_agent

    def drew(self, n: int) -> None:
        if self.climbed:
            self.samples[self.climbed[-1]] += n

    def witnesses(self, agents: AgentMix) -> bool:
        """Whether this step's first round draws a witness: the ladder has one, and its agent is not drawing already."""
        return self.ladder.witness and self.helper not in agents.cycle

    def witness_request(self, config: RunConfig, prompt: str, seed: int, draft: Callable[[str], str | None] | None,
                        stop: tuple[str, ...]) -> SampleRequest:
        """The witness's sample: the agent rung's agent, at the first temperature, on a seed of its own."""
        return SampleRequest(prompt, 1, config.first_temperature, config.cap, (seed + WITNESS_SEED) & 0x7FFFFFFF,
                             self.helper, draft, stop)

    def witnessed(self, verdict: Any) -> None:
        """Keep the witness's reply: a vote (with its agent, for the agent rung's replay) unless red-flagged."""
        valid = verdict.__class__ is not Flagged
        self.witness = AgentVotes(samples=1, red_flags=0 if valid else 1, votes=[verdict] if valid else [])
        if valid:
            self.votes.append((verdict, self.helper))
        else:
            self.outcome = "red-flagged"

    def confirms(self, winner: Any) -> bool:
        """Whether the race's winner stands beside the witness: it does if the witness gave it, or gave nothing
        valid. If not, the step climbs straight to the agent rung before its next round (``maker.escalation``)."""
        votes = self.witness.votes  # type: ignore[union-attr]
        if not votes:
            return True
        self.outcome = "agreed" if winner in votes else "disagreed"
        if self.outcome == "disagreed":
            self.start = self.ladder.agent_rung
            return False
        return True

    def take_in(self, counts: dict[Any, int], winner: Any, by_agent: dict[str | None, AgentVotes] | None,
                agents: AgentMix, drawn: int) -> tuple[dict[Any, int], dict[str | None, AgentVotes]]:
        """The witness's part beside the other agents', and its vote, if it gave one (the winner), as one more."""
        witness, self.witness = self.witness, None
        if witness.votes:  # type: ignore[union-attr]
            counts = {**counts, winner: counts[winner] + 1}
        return counts, self._parts(by_agent, agents, drawn, witness)

    def _parts(self, by_agent: dict[str | None, AgentVotes] | None, agents: AgentMix, drawn: int,
               witness: AgentVotes | None) -> dict[str | None, AgentVotes]:
        """Each agent's part of the step so far, the ladder's agent's included. A single agent's part is rebuilt
        from the votes kept: every sample not the witness's, its votes, the rest red-flagged."""
        if by_agent is None:
            own = drawn - (witness.samples if witness is not None else 0)
            first = AgentVotes(samples=own, votes=[vote for vote, voter in self.votes if voter != self.helper])
            first.red_flags = own - len(first.votes)
            by_agent = {agents.first: first}
        by_agent.setdefault(self.helper, witness if witness is not None else AgentVotes())
        return by_agent

    def _next_wording(self) -> None:
        """Each round on the paraphrase rung asks through the task's next rewording (cycling)."""
        task, engine = self.engine.chain.task, self.engine
        self.variant += 1
        try:
            worded = task.paraphrase(self.state, self.variant)
            if worded is None and self.variant > 1:
                self.variant = 1
                worded = task.paraphrase(self.state, 1)
        except Exception as exc:
            raise StepError(f"task.paraphrase raised {type(exc).__name__}: {exc}", step=self.step, state=self.state) from exc
        if worded is None:
            raise StepError("task.paraphrase gave no rewording (variant 1 must exist when the task defines it)",
                            step=self.step, state=self.state)
        if worded != self.prompt:
            self.prompt = worded
            for hook in engine.emit.step_escalated:  # a backend that learns prompts (sim) learns this one
                hook(engine.chain, self.step, self.state, "paraphrase", worded)

    def _second_agent(self, agents: AgentMix, race: VoteRace, by_agent: dict[str | None, AgentVotes] | None,
                      drawn: int) -> tuple[AgentMix, VoteRace, dict[str | None, AgentVotes] | None]:
        helper = self.ladder.agent
        if helper in agents.cycle:
            return agents, race, by_agent
        mixed = AgentMix(cycle=(*agents.cycle, helper), agreement=True)
        agreeing = AgreeingRace(race.k, race.rule)
        # The votes so far, each with its agent, the witness's among them: they decide the race if a reply the witness
        # shares with the first agent leads by k (the plain race, undecided, never does without a witness).
        agreeing.replay(self.votes)
        self.keeps_votes = False  # the race itself knows each vote's agent from here on
        witness, self.witness = self.witness, None
        if witness is not None and self.outcome is None:
            self.outcome = "joined"  # climbed for another reason, the witness's vote now in the race
        return mixed, agreeing, self._parts(by_agent, agents, drawn, witness)
