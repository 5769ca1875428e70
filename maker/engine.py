"""The engine: carries out a task step by step, each step decided by a vote of sampled replies.

For one step: render the prompt, draw the first k samples at once (the first greedy, the rest at
the run's temperature), discard red-flagged replies, vote, and keep drawing in rounds until the
race is decided or the per-step cap is hit (``StepFailed``, never a silent "take the leader").
Each round draws exactly the votes that could still decide the race, so no sample drawn is ever
surplus. The oracle is consulted only after a step is committed, to count errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maker.backends.base import Backend, SampleRequest
from maker.config import RunConfig
from maker.errors import BackendResponseError, StepError, StepFailed
from maker.journal import JournalWriter
from maker.redflag import RedFlag, RedFlagReason
from maker.statistics import RunStatistics, StatsCounter
from maker.task import Task
from maker.voting import VoteRace

ProgressCallback = Callable[[RunStatistics], None]
_PROGRESS_EVERY = 0.1  # seconds between progress callbacks

_TOO_LONG = RedFlagReason.TOO_LONG
_TRUNCATED = RedFlagReason.TRUNCATED


@dataclass(frozen=True, slots=True)
class StepDecision:
    """How one step was decided."""

    candidate: Any
    votes: list[int]  # the winner's votes first, then the others' in descending order
    samples: int
    rounds: int


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
    depth: int = 0
    nodes: list[dict[str, Any]] = field(default_factory=list)  # per subtask: steps, samples, seconds, reruns

    @property
    def steps(self) -> int:
        return self.statistics.steps

    @property
    def errors(self) -> int | None:
        return self.statistics.errors

    def summary(self) -> dict[str, Any]:
        stats = self.statistics.to_json()
        return {
            "task": self.task,
            "params": self.params,
            "backend": self.backend,
            "simulated": self.simulated,
            "solved": self.solved,
            "k": self.config.k,
            "rule": self.config.rule,
            "checks": self.config.checks,
            **stats,
            "resumed_steps": self.resumed_steps,
            "journal": self.journal,
            "stopped_reason": self.stopped_reason,
            "depth": self.depth,
            "subtasks": len(self.nodes),
        }


class Engine:
    """Decides and commits steps of one task with one backend under one config."""

    def __init__(
        self,
        task: Task,
        backend: Backend,
        config: RunConfig,
        *,
        journal: JournalWriter | None = None,
        progress: ProgressCallback | None = None,
        stats: StatsCounter | None = None,
    ) -> None:
        self.task = task
        self.backend = backend
        self.config = config
        self.journal = journal
        self.progress = progress
        # Chains of one plan share one counter: statistics are for the whole run.
        self.stats = stats or StatsCounter(has_oracle=task.has_oracle and config.verify, has_check=task.has_check)
        self._apply_checks = config.checks and task.has_check
        self._split_first = config.first_temperature != config.temperature  # greedy first vote: its own request
        self.rule_violations = 0
        self.steps = 0
        self.errors = 0  # this engine's share of stats.errors, so a voided chain can take its own back

    def statistics(self) -> RunStatistics:
        return self.stats.snapshot()

    # --- one step -----------------------------------------------------------------------------
    async def decide(self, state: Any, step: int) -> StepDecision:
        """Sample, red-flag and vote until one candidate wins (or the cap is hit)."""
        # This runs once per step, a million times per run: settings are read into locals.
        cfg, stats, sample_many = self.config, self.stats, self.backend.sample_many
        max_tokens, cap, later_temp = cfg.max_tokens, cfg.max_samples_per_step, cfg.temperature
        try:
            prompt = self.task.prompt(state)
        except Exception as exc:
            raise StepError(f"task.prompt raised {type(exc).__name__}: {exc}", step=step, state=state) from exc
        race = VoteRace(cfg.k, cfg.rule)
        add = race.add
        verdicts: dict[str, Any] = {}  # reply text -> candidate or RedFlagReason (parse is pure)
        drawn = red = rounds = tokens = 0
        seed = (cfg.seed * 1_000_003 + step * 131) & 0x7FFFFFFF
        try:
            while True:
                need = min(race.votes_needed(), cap - drawn)
                if need <= 0:
                    raise StepFailed(step=step, samples=drawn, counts=race.counts, red_flags=red)
                if drawn == 0 and self._split_first:
                    requests = [SampleRequest(prompt, 1, cfg.first_temperature, max_tokens, seed, state)]
                    if need > 1:
                        requests.append(SampleRequest(prompt, need - 1, later_temp, max_tokens, seed + 1, state))
                else:
                    temp = cfg.first_temperature if drawn == 0 else later_temp
                    requests = [SampleRequest(prompt, need, temp, max_tokens, seed + rounds + 1, state)]
                rounds += 1
                got = 0
                for batch in await sample_many(requests):
                    for sample in batch:
                        got += 1
                        tokens += sample.tokens
                        if sample.finish_reason == "length":
                            verdict: Any = _TRUNCATED
                        elif sample.tokens > max_tokens:
                            verdict = _TOO_LONG
                        else:
                            text = sample.text
                            verdict = verdicts.get(text, verdicts)
                            if verdict is verdicts:  # not seen this step: parse it
                                verdict = verdicts[text] = self._judge(state, text, step)
                        if verdict.__class__ is RedFlagReason:
                            red += 1
                            stats.flag(verdict)
                            continue
                        try:
                            winner = add(verdict)
                        except TypeError as exc:
                            raise StepError(f"task.parse returned an unhashable candidate {verdict!r}", step=step, state=state) from exc
                        if winner is not None:
                            drawn += got
                            stats.valid_votes += race.votes
                            won = race.counts[winner]
                            votes = sorted(race.counts.values(), reverse=True)
                            if votes[0] != won:  # first-to-k: the winner need not lead alone
                                votes.remove(won)
                                votes.insert(0, won)
                            return StepDecision(winner, votes, drawn, rounds)
                if got == 0:
                    raise BackendResponseError(f"step {step}: backend {self.backend.name!r} returned no samples for {need} requested")
                drawn += got
        finally:
            stats.samples += drawn
            stats.tokens += tokens

    def _judge(self, state: Any, text: str, step: int) -> Any:
        """A reply's candidate, or the RedFlagReason it is discarded for."""
        try:
            candidate = self.task.parse(state, text)
            if self._apply_checks:
                self.task.check(state, candidate)
        except RedFlag as flag:
            return flag.reason
        except Exception as exc:
            raise StepError(
                f"task code raised {type(exc).__name__}: {exc} (it must raise maker.RedFlag to reject a reply; "
                f"reply: {text[:200]!r})",
                step=step,
                state=state,
            ) from exc
        return candidate

    # --- a chain of steps ---------------------------------------------------------------------
    async def run_chain(self, state: Any, *, first_step: int = 0, max_steps: int | None = None, chain: int | None = None) -> tuple[Any, int]:
        """Decide and commit steps from ``state`` until the task is done or ``max_steps`` steps
        are committed. Returns the final state and the number of steps committed."""
        task, stats, journal = self.task, self.stats, self.journal
        verify = stats.has_oracle
        post_check = task.has_check and not self._apply_checks
        encode = task.encode_candidate
        step = first_step
        last = None if max_steps is None else first_step + max_steps
        while step != last and not task.is_done(state):
            decision = await self.decide(state, step)
            winner = decision.candidate
            if verify:
                self._count_error(state, winner)
            if post_check:
                try:
                    task.check(state, winner)
                except RedFlag:
                    stats.rule_violations += 1
                    self.rule_violations += 1
            try:
                state = task.apply(state, winner)
            except Exception as exc:
                raise StepError(f"task.apply raised {type(exc).__name__}: {exc} for candidate {winner!r}", step=step, state=state) from exc
            if journal is not None:
                journal.append(step, encode(winner), decision.votes, decision.samples, decision.rounds, chain)
            stats.commit(step, sum(decision.votes), decision.rounds)
            step += 1
            self.steps += 1
            if self.progress is not None:
                now = time.perf_counter()
                if now - stats.last_progress >= _PROGRESS_EVERY:
                    stats.last_progress = now
                    self.progress(stats.snapshot())
        return state, step - first_step

    def void(self) -> None:
        """Take this engine's decisions out of the run's counts: its chain is being redone.
        The samples it drew stay counted (they were spent); its steps and errors move to
        ``redone_steps`` and ``caught_errors``."""
        stats = self.stats
        stats.steps -= self.steps
        stats.redone_steps += self.steps
        stats.errors -= self.errors
        stats.caught_errors += self.errors
        stats.rule_violations -= self.rule_violations
        self.steps = self.errors = self.rule_violations = 0

    def replay(self, state: Any, records: list[dict[str, Any]]) -> Any:
        """Rebuild a chain's state and the run's counters from journal records, drawing nothing."""
        task, stats = self.task, self.stats
        for record in records:
            winner = task.candidate_from_json(record["candidate"])
            if stats.has_oracle:
                self._count_error(state, winner)
            try:
                state = task.apply(state, winner)
            except Exception as exc:
                raise StepError(f"replaying the journal: task.apply raised {type(exc).__name__}: {exc}", step=record["step"], state=state) from exc
            votes = sum(record.get("votes", ()))
            stats.samples += record.get("samples", 0)
            stats.valid_votes += votes
            stats.commit(record["step"], votes, record.get("rounds", 1))
            self.steps += 1  # a redo of this chain voids the journalled steps as well
        return state

    def _count_error(self, state: Any, winner: Any) -> None:
        """After the fact: count a committed decision the oracle disagrees with."""
        try:
            wrong = self.task.oracle(state) != winner
        except Exception:  # the oracle has no answer for a state a wrong step led to
            wrong = True
        if wrong:
            self.stats.errors += 1
            self.errors += 1
