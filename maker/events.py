"""What a run tells the world: the engine emits events, observers subscribe.

The engine keeps no counters of its own. Statistics (``maker.statistics.StatisticsRecorder``),
the journal (``maker.journal.JournalWriter``), the progress bar and the simulated backend are
observers: each overrides the hooks it needs and ignores the rest. Only overridden hooks are
called (``hooks``), so an event nobody listens to costs nothing in the hot loop. A user's observer
that raises is reported and removed (``emitter``); it never ends a run.

Events: ``run_started`` (task, backend, settings) once, before anything is replayed or drawn; then, in
the order a chain sees them, ``chain_started``; per step ``step_started`` (prompt rendered), ``sampled``
(a round of replies came back), ``red_flag`` (one reply discarded) and ``step_decided`` (committed; also
for steps replayed from a journal); ``chain_reset`` (voided to be redone); ``chain_finished``; and last,
however the run ended, ``run_finished`` (its result, or the error that ended it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from maker.errors import Flagged
from maker.mixing import AgentMix
from maker.samples import Sample
from maker.task import Task

log = logging.getLogger("maker")


@dataclass(frozen=True, eq=False)  # one per attempt of a chain: observers key on identity
class ChainInfo:
    """Which chain an event belongs to: its journal index (None in a one-chain run), its plan
    name, the task whose steps it runs and the agents that draw its samples (``maker.mixing``;
    one agent is a cycle of one)."""

    index: int | None
    name: str
    task: Task
    agents: AgentMix
    attempt: int = 0  # 1 for a chain redone after its end check failed

    @property
    def agent(self) -> str | None:
        """The agent of each step's first vote, whose settings the chain runs with."""
        return self.agents.first


class StepDecision(NamedTuple):
    """How one step was decided (a named tuple: one is made per step, a million a run)."""

    candidate: Any
    votes: list[int]  # the winner's votes first, then the others' in descending order
    samples: int
    rounds: int
    replayed: bool = False  # rebuilt from a journal: nothing was drawn for it in this session
    by_agent: dict[str, AgentVotes] | None = None  # with a mix: what each agent drew and voted
    kind: str | None = None  # the kind of step (Task.kind), when the task has kinds
    escalated: dict[str, int] | None = None  # the escalation rungs the step climbed, with the samples drawn on each
    # The escalation witness (maker.escalation): "agreed" (it gave the winner), "disagreed" (it did not: the step
    # climbed), "red-flagged" (no say), "joined" (the step climbed for another reason); None: none drawn.
    witness: str | None = None


@dataclass(slots=True)
class AgentVotes:
    """One agent's part in one step of a mixed race: samples drawn, replies red-flagged, candidates voted."""

    samples: int = 0
    red_flags: int = 0
    votes: list[Any] = field(default_factory=list)


class Observer:
    """Base class of observers: every hook does nothing; override the ones you need. In
    ``step_decided``, ``state`` is the state the step was decided in (before the candidate is applied)."""

    def run_started(self, task: Task, backend: Any, config: Any) -> None: ...
    def run_finished(self, result: Any, error: BaseException | None) -> None: ...
    def chain_started(self, chain: ChainInfo, state: Any) -> None: ...
    def step_started(self, chain: ChainInfo, step: int, state: Any, prompt: str) -> None: ...
    def step_escalated(self, chain: ChainInfo, step: int, state: Any, rung: str, prompt: str) -> None: ...
    def sampled(self, chain: ChainInfo, step: int, samples: Sequence[Sample]) -> None: ...
    def red_flag(self, chain: ChainInfo, step: int, flagged: Flagged) -> None: ...
    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None: ...
    def chain_reset(self, chain: ChainInfo, reason: str) -> None: ...
    def chain_finished(self, chain: ChainInfo, state: Any) -> None: ...


Hooks = tuple[Callable[..., None], ...]


def hooks(observers: Iterable[Observer], event: str) -> Hooks:
    """The bound ``event`` hooks of the observers that override it, in order."""
    return tuple(getattr(o, event) for o in observers if _listens(o, event))


def _listens(observer: Observer, event: str) -> bool:
    return event in getattr(observer, "__dict__", ()) or getattr(type(observer), event) is not getattr(Observer, event)


class Emitter(NamedTuple):
    """The hooks of a set of observers, one tuple per event, looked up once (``emitter``)."""

    run_started: Hooks
    run_finished: Hooks
    chain_started: Hooks
    step_started: Hooks
    step_escalated: Hooks
    sampled: Hooks
    red_flag: Hooks
    step_decided: Hooks
    chain_reset: Hooks
    chain_finished: Hooks


def emitter(observers: Iterable[Observer], guarded: Iterable[Observer] = ()) -> Emitter:
    """The hooks of ``observers`` (maker's own: the journal, statistics, progress), then of ``guarded`` ones (a
    user's), each of which is reported and removed from the run when a hook of its raises: only the journal's
    commit carries meaning, so an observer never ends a run (as trio does with its instruments)."""
    listening = [*observers, *(_Guarded(o) for o in guarded)]
    return Emitter(*(hooks(listening, event) for event in Emitter._fields))


class _Guarded(Observer):
    """A user's observer behind a guard: the first hook that raises is logged, and the observer hears no more."""

    def __init__(self, observer: Observer) -> None:
        self.observer, self.removed = observer, False
        for event in Emitter._fields:
            if _listens(observer, event):  # an instance attribute: _listens sees it, so only these are called
                setattr(self, event, partial(self._call, event, getattr(observer, event)))

    def _call(self, event: str, hook: Callable[..., None], *args: Any) -> None:
        if self.removed:
            return
        try:
            hook(*args)
        except Exception as exc:
            self.removed = True
            log.warning("observer %s raised %s in %s: %s; it is removed from the run, which goes on",
                        type(self.observer).__name__, type(exc).__name__, event, exc)

