"""Run statistics: a recorder that observes the engine's events, and the frozen, mergeable
record everyone reads (the CLI summary, the progress bar, benchmarks and tests).

The recorder keeps one tally per chain attempt. A chain voided to be redone keeps its tally, now
counted as redone: its samples stay spent, its steps become ``redone_steps`` and its wrong
decisions ``caught_errors``. Nothing is ever subtracted; records of separate runs, processes or
machines add up with ``RunStatistics.merge``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from maker.backends.base import Sample
from maker.events import ChainInfo, Observer, StepDecision
from maker.redflag import Flagged, RedFlagReason, rule_violation
from maker.task import oracle_disagrees, oracle_fault

log = logging.getLogger("maker")

_EMPTY: Mapping[Any, int] = MappingProxyType({})
PROGRESS_EVERY = 0.1  # seconds between two progress snapshots, at least, unless a run asks otherwise


def _added(a: Any, b: Any) -> Any:
    """Two records' values of one field, added: mappings key by key (nested ones too); None (not
    counted) only if both are."""
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        a, b = a or _EMPTY, b or _EMPTY
        return MappingProxyType({key: _added(a.get(key), b.get(key)) for key in dict.fromkeys([*a, *b])})
    return None if a is None and b is None else (a or 0) + (b or 0)


@dataclass(frozen=True)
class RunStatistics:
    """A snapshot of a run's counters."""

    steps: int = 0  # decided and committed steps
    samples: int = 0  # replies drawn, red-flagged ones included
    valid_votes: int = 0  # replies that passed the red flags and voted
    red_flags: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # by RedFlagReason value
    votes_per_step: Mapping[int, int] = field(default_factory=lambda: _EMPTY)  # histogram: valid votes a step needed -> number of steps
    rounds_per_step: Mapping[int, int] = field(default_factory=lambda: _EMPTY)  # histogram: sampling rounds a step needed -> steps
    max_votes: int = 0  # most valid votes any one step needed
    max_votes_step: int | None = None  # which step that was
    tokens: int = 0  # output tokens of all samples, as the backend reported them
    seconds: float = 0.0  # wall time so far
    errors: int | None = None  # decisions that differ from the oracle (None: task has no oracle)
    rule_violations: int | None = None  # committed steps failing the task's answer-free check (None: no check)
    backend_retries: int = 0
    redone_steps: int = 0  # steps of chains that failed their end check and were redone
    caught_errors: int | None = None  # wrong decisions in those redone chains (caught by the check)
    oracle_faults: int | None = None  # decisions differing from an oracle whose own answer breaks the check: not errors
    backend: Mapping[str, int | float] = field(default_factory=lambda: _EMPTY)  # Backend.statistics() at the end
    # With a mix of agents (maker.mixing): agent -> samples, red_flags, valid_votes, winning_votes
    # (for the step's winner) and, when the run is verified, wrong_votes (valid votes the oracle
    # disagrees with, counted after the fact, an oracle fault included). Steps decided in this
    # session only: a step replayed from a journal or one that failed has no per-agent record.
    by_agent: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: _EMPTY)
    # For a task with kinds of step (Task.kind): kind -> steps, samples, valid_votes, red_flags, contested
    # (steps where some valid vote went to another candidate) and, when verified, errors (after the fact).
    # A redone chain's steps leave steps and errors and count as redone_steps; their samples stay spent.
    by_kind: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: _EMPTY)
    # The escalation ladder (maker.escalation): rung -> steps that climbed to it and samples drawn on it, decided
    # steps only (a step that fails says what it climbed in its error). With a witness, also "witness" -> steps that
    # drew one, its samples, and how many of them it agreed, disagreed (sent to the agent rung), red-flagged or joined.
    escalations: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: _EMPTY)

    @property
    def red_flag_total(self) -> int:
        return sum(self.red_flags.values())

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def samples_per_step(self) -> float:
        return self.samples / self.steps if self.steps else 0.0

    def merge(self, other: RunStatistics) -> RunStatistics:
        """Both records' work as one: counts add, the longer wall time counts (they ran at once)."""
        merged = {f.name: _added(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        top = self if self.max_votes >= other.max_votes else other
        merged.update(seconds=max(self.seconds, other.seconds), max_votes=top.max_votes, max_votes_step=top.max_votes_step)
        return RunStatistics(**merged)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps, "samples": self.samples, "valid_votes": self.valid_votes,
            "red_flags": self.red_flag_total, "red_flags_by_reason": {r.value: self.red_flags.get(r.value, 0) for r in RedFlagReason},
            "votes_per_step": {str(k): v for k, v in sorted(self.votes_per_step.items())},
            "rounds_per_step": {str(k): v for k, v in sorted(self.rounds_per_step.items())},
            "max_votes_in_one_step": self.max_votes, "max_votes_step": self.max_votes_step, "tokens": self.tokens,
            "seconds": round(self.seconds, 3), "steps_per_second": round(self.steps_per_second, 1),
            "samples_per_step": round(self.samples_per_step, 4), "errors": self.errors,
            "rule_violations": self.rule_violations, "backend_retries": self.backend_retries,
            "redone_steps": self.redone_steps, "caught_errors": self.caught_errors, "oracle_faults": self.oracle_faults,
            "backend_statistics": dict(self.backend),
            "by_agent": {agent: dict(counts) for agent, counts in self.by_agent.items()},
            "by_kind": {kind: dict(counts) for kind, counts in self.by_kind.items()},  # in the order the run met them
            "escalations": {rung: dict(counts) for rung, counts in self.escalations.items()},
        }


class _Tally:
    """One chain attempt's counters. Not thread-safe: one event loop owns it."""

    def __init__(self) -> None:
        self.steps = self.samples = self.valid_votes = self.tokens = self.errors = self.violations = self.max_votes = 0
        self.oracle_faults = 0
        self.max_votes_step: int | None = None
        self.red_flags: Counter[str] = Counter()
        self.votes_per_step: Counter[int] = Counter()
        self.rounds_per_step: Counter[int] = Counter()
        self.by_agent: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.by_kind: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.escalations: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.voided = False

    def absorb(self, other: _Tally) -> None:
        """Add another attempt's counts to these, as ``RunStatistics.merge`` would add their records (the earlier
        one keeps a tie for the most votes): a snapshot sums the running attempts so, then freezes once."""
        self.steps += other.steps
        self.samples += other.samples
        self.valid_votes += other.valid_votes
        self.tokens += other.tokens
        self.errors += other.errors
        self.violations += other.violations
        self.oracle_faults += other.oracle_faults
        if other.max_votes > self.max_votes:
            self.max_votes, self.max_votes_step = other.max_votes, other.max_votes_step
        self.red_flags.update(other.red_flags)
        self.votes_per_step.update(other.votes_per_step)
        self.rounds_per_step.update(other.rounds_per_step)
        for mine, theirs in ((self.by_agent, other.by_agent), (self.by_kind, other.by_kind),
                             (self.escalations, other.escalations)):
            for key, counts in theirs.items():
                mine[key].update(counts)

    def freeze(self, oracle: bool, check: bool) -> RunStatistics:
        record = RunStatistics(
            steps=self.steps, samples=self.samples, valid_votes=self.valid_votes,
            red_flags=MappingProxyType(dict(self.red_flags)), votes_per_step=MappingProxyType(dict(self.votes_per_step)),
            rounds_per_step=MappingProxyType(dict(self.rounds_per_step)), max_votes=self.max_votes,
            max_votes_step=self.max_votes_step, tokens=self.tokens, errors=self.errors if oracle else None,
            rule_violations=self.violations if check else None, caught_errors=0 if oracle else None,
            oracle_faults=self.oracle_faults if oracle else None,
            by_agent=MappingProxyType({agent: MappingProxyType(dict(c)) for agent, c in self.by_agent.items()}),
            by_kind=MappingProxyType({kind: MappingProxyType({**c, "errors": c["errors"]} if oracle else dict(c))
                                      for kind, c in self.by_kind.items()}),
            escalations=MappingProxyType({rung: MappingProxyType(dict(c)) for rung, c in self.escalations.items()}))
        if not self.voided:
            return record
        redone_kinds = MappingProxyType({kind: MappingProxyType({**c, "steps": 0, "errors": 0, "redone_steps": c["steps"]})
                                         for kind, c in record.by_kind.items()})
        # A voided attempt's decisions are not the solution's: they count as redone, and its
        # wrong ones as caught. Its samples, votes and red flags were spent and stay counted.
        return replace(record, steps=0, redone_steps=self.steps, votes_per_step=_EMPTY, rounds_per_step=_EMPTY,
                       max_votes=0, max_votes_step=None, errors=0 if oracle else None,
                       rule_violations=0 if check else None, caught_errors=self.errors if oracle else None,
                       by_kind=redone_kinds)


class StatisticsRecorder(Observer):
    """Counts what the engine reports. ``verify``: compare each committed decision with the oracle, after the fact;
    ``checks``: the run red-flags with the task's check (else committed steps breaking it count as rule violations)."""

    def __init__(self, *, oracle: bool, check: bool, verify: bool = True, checks: bool = False) -> None:
        self.oracle, self.check, self._checks = oracle and verify, check, checks
        self._tallies: defaultdict[ChainInfo, _Tally] = defaultdict(_Tally)  # attempts under way
        self._settled = _Tally().freeze(self.oracle, check)  # nothing settled yet: its counters start at 0 or None
        self._warned = False  # about a broken oracle: once a run
        self.started = time.perf_counter()

    def sampled(self, chain: ChainInfo, step: int, samples: Sequence[Sample]) -> None:
        tally = self._tallies[chain]
        tally.samples += len(samples)
        for sample in samples:  # a loop, not sum() over a generator: this runs every round of every step
            tally.tokens += sample.tokens

    def red_flag(self, chain: ChainInfo, step: int, flagged: Flagged) -> None:
        self._tallies[chain].red_flags[flagged.reason.value] += 1

    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None:
        tally = self._tallies[chain]
        votes = sum(decision.votes)
        tally.steps += 1
        tally.valid_votes += votes
        tally.votes_per_step[votes] += 1
        tally.rounds_per_step[decision.rounds] += 1
        if votes > tally.max_votes:
            tally.max_votes, tally.max_votes_step = votes, step
        if decision.replayed:
            tally.samples += decision.samples
        task = chain.task
        if decision.by_agent is not None:
            self._count_agents(tally, task, state, decision)
        if decision.escalated:
            for rung, drawn in decision.escalated.items():
                counts = tally.escalations[rung]
                counts["steps"] += 1
                counts["samples"] += drawn
        if decision.witness is not None:
            counts = tally.escalations["witness"]
            counts["steps"] += 1
            counts["samples"] += 1  # one sample a witnessed step (maker.escalation)
            counts[decision.witness] += 1
        by_kind = None
        if decision.kind is not None:
            by_kind = tally.by_kind[decision.kind]
            by_kind["steps"] += 1
            by_kind["samples"] += decision.samples
            by_kind["valid_votes"] += votes
            by_kind["red_flags"] += decision.samples - votes  # each sample either voted or was red-flagged
            by_kind["contested"] += len(decision.votes) > 1
        if self.oracle and task.has_oracle and oracle_disagrees(task, state, decision.candidate):
            fault = oracle_fault(task, state)
            if fault is None:
                tally.errors += 1
                if by_kind is not None:
                    by_kind["errors"] += 1
            else:  # the oracle is what is wrong here, not the decision
                tally.oracle_faults += 1
                if not self._warned:
                    self._warned = True
                    log.warning("task %r: at step %d %s; such steps are counted as oracle_faults, not errors "
                                "(fix the task's oracle or check)", task.name, step, fault)
        if self.check and not self._checks and task.has_check and rule_violation(task, state, decision.candidate, step=step):
            tally.violations += 1

    def _count_agents(self, tally: _Tally, task: Any, state: Any, decision: StepDecision) -> None:
        verify = self.oracle and task.has_oracle
        wrong: dict[Any, bool] = {}  # candidate -> the oracle disagrees (after the fact, never in the vote)
        for agent, part in (decision.by_agent or {}).items():
            counts = tally.by_agent[agent]
            counts.update(samples=part.samples, red_flags=part.red_flags, valid_votes=len(part.votes),
                          winning_votes=sum(vote == decision.candidate for vote in part.votes))
            if verify:
                for vote in part.votes:
                    if vote not in wrong:
                        wrong[vote] = oracle_disagrees(task, state, vote)
                counts["wrong_votes"] += sum(wrong[vote] for vote in part.votes)

    def chain_reset(self, chain: ChainInfo, reason: str) -> None:
        self._tallies[chain].voided = True
        self._settle(chain)

    def chain_finished(self, chain: ChainInfo, state: Any) -> None:
        self._settle(chain)

    def _settle(self, chain: ChainInfo) -> None:
        """Fold an ended attempt into the settled total, so a snapshot merges only the chains
        still running (at most the run's concurrency), not every chain of a large plan."""
        tally = self._tallies.pop(chain, None)
        if tally is not None:
            self._settled = self._settled.merge(tally.freeze(self.oracle, self.check))

    def snapshot(self, **extra: Any) -> RunStatistics:
        # The running attempts are summed as tallies and frozen once: freezing and merging each one cost a
        # watched 256-chain run about a fifth of its time at ten snapshots a second.
        total, running = self._settled, _Tally()
        for tally in list(self._tallies.values()):
            if tally.voided:  # counted apart (its steps as redone): frozen on its own
                total = total.merge(tally.freeze(self.oracle, self.check))
            else:
                running.absorb(tally)
        total = total.merge(running.freeze(self.oracle, self.check))
        flags = MappingProxyType({r.value: total.red_flags.get(r.value, 0) for r in RedFlagReason})
        return replace(total, red_flags=flags, seconds=time.perf_counter() - self.started, **extra)


class ProgressReporter(Observer):
    """Calls ``callback`` with a statistics snapshot (``snapshot()``: a recorder's, or several merged) at most every
    ``every`` seconds."""

    def __init__(self, callback: Callable[[RunStatistics], None], snapshot: Callable[[], RunStatistics],
                 every: float = PROGRESS_EVERY) -> None:
        self.callback, self.snapshot, self.every = callback, snapshot, every
        self._last = -float("inf")  # the first step reports at once (perf_counter's zero is arbitrary: near boot, small)

    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None:
        now = time.perf_counter()
        if now - self._last >= self.every:
            self.callback(self.snapshot())
            self._last = time.perf_counter()  # after the callback: a slow one never runs back to back
