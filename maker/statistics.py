"""Run statistics: one mutable counter the engine updates, one frozen record everyone reads.

The CLI summary, the progress bar, benchmarks and tests all read ``RunStatistics``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from maker.redflag import RedFlagReason


@dataclass(frozen=True)
class RunStatistics:
    """A snapshot of a run's counters."""

    steps: int  # decided and committed steps
    samples: int  # replies drawn, red-flagged ones included
    valid_votes: int  # replies that passed the red flags and voted
    red_flags: Mapping[str, int]  # by RedFlagReason value
    votes_per_step: Mapping[int, int]  # histogram: valid votes a step needed -> number of steps
    rounds_per_step: Mapping[int, int]  # histogram: sampling rounds a step needed -> steps
    max_votes: int  # most valid votes any one step needed
    max_votes_step: int | None  # which step that was
    tokens: int  # output tokens of all samples, as the backend reported them
    seconds: float  # wall time so far
    errors: int | None  # decisions that differ from the oracle (None: task has no oracle)
    rule_violations: int | None  # committed steps failing the task's answer-free check (None: no check)
    backend_retries: int = 0
    redone_steps: int = 0  # steps of chains that failed their end check and were redone
    caught_errors: int | None = None  # wrong decisions in those redone chains (caught by the check)

    @property
    def red_flag_total(self) -> int:
        return sum(self.red_flags.values())

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def samples_per_step(self) -> float:
        return self.samples / self.steps if self.steps else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "samples": self.samples,
            "valid_votes": self.valid_votes,
            "red_flags": self.red_flag_total,
            "red_flags_by_reason": dict(self.red_flags),
            "votes_per_step": {str(k): v for k, v in sorted(self.votes_per_step.items())},
            "rounds_per_step": {str(k): v for k, v in sorted(self.rounds_per_step.items())},
            "max_votes_in_one_step": self.max_votes,
            "max_votes_step": self.max_votes_step,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "steps_per_second": round(self.steps_per_second, 1),
            "samples_per_step": round(self.samples_per_step, 4),
            "errors": self.errors,
            "rule_violations": self.rule_violations,
            "backend_retries": self.backend_retries,
            "redone_steps": self.redone_steps,
            "caught_errors": self.caught_errors,
        }


@dataclass
class StatsCounter:
    """The engine's live counters. Not thread-safe: one event loop owns it."""

    has_oracle: bool = False
    has_check: bool = False
    steps: int = 0
    samples: int = 0
    valid_votes: int = 0
    tokens: int = 0
    errors: int = 0
    rule_violations: int = 0
    max_votes: int = 0
    max_votes_step: int | None = None
    red_flags: Counter[str] = field(default_factory=Counter)
    votes_per_step: Counter[int] = field(default_factory=Counter)
    rounds_per_step: Counter[int] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    elapsed_before: float = 0.0  # wall time of earlier sessions of a resumed run
    backend_retries: int = 0
    last_progress: float = 0.0  # when a progress callback last ran (shared by all chains)
    redone_steps: int = 0
    caught_errors: int = 0

    def flag(self, reason: RedFlagReason) -> None:
        self.red_flags[reason.value] += 1

    def commit(self, step: int, votes: int, rounds: int) -> None:
        """Count one committed step that took ``votes`` valid votes over ``rounds`` rounds."""
        self.steps += 1
        self.votes_per_step[votes] += 1
        self.rounds_per_step[rounds] += 1
        if votes > self.max_votes:
            self.max_votes, self.max_votes_step = votes, step

    def snapshot(self) -> RunStatistics:
        return RunStatistics(
            steps=self.steps,
            samples=self.samples,
            valid_votes=self.valid_votes,
            red_flags=MappingProxyType({r.value: self.red_flags.get(r.value, 0) for r in RedFlagReason}),
            votes_per_step=MappingProxyType(dict(self.votes_per_step)),
            rounds_per_step=MappingProxyType(dict(self.rounds_per_step)),
            max_votes=self.max_votes,
            max_votes_step=self.max_votes_step,
            tokens=self.tokens,
            seconds=self.elapsed_before + time.perf_counter() - self.started,
            errors=self.errors if self.has_oracle else None,
            rule_violations=self.rule_violations if self.has_check else None,
            backend_retries=self.backend_retries,
            redone_steps=self.redone_steps,
            caught_errors=self.caught_errors if self.has_oracle else None,
        )
