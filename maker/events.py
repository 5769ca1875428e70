"""What a run tells the world: the engine emits events, observers subscribe.

The engine keeps no counters of its own. Statistics (``maker.statistics.StatisticsRecorder``),
the journal (``maker.journal.JournalWriter``), the progress bar and the simulated backend are
observers: each overrides the hooks it needs and ignores the rest. Only overridden hooks are
called (``hooks``), so an event nobody listens to costs nothing in the hot loop.

Events, in the order a chain sees them: ``chain_started``; per step ``step_started`` (prompt rendered),
``sampled`` (a round of replies came back), ``red_flag`` (one reply discarded) and ``step_decided``
(committed; also for steps replayed from a journal); ``chain_reset`` (voided to be redone); ``chain_finished``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from maker.backends.base import Sample
    from maker.mixing import AgentMix
    from maker.redflag import Flagged
    from maker.task import Task


@dataclass(frozen=True, eq=False)  # one per attempt of a chain: observers key on identity
class ChainInfo:
    """Which chain an event belongs to: its journal index (None in a one-chain run), its plan
    name, the task whose steps it runs and the microagent that serves it (with a ``mix``, the
    mix's first agent, whose settings the chain runs with; ``maker.mixing``)."""

    index: int | None
    name: str
    task: Task
    agent: str | None
    attempt: int = 0  # 1 for a chain redone after its end check failed
    mix: AgentMix | None = None  # the agents that draw the samples of each step, if several


@dataclass(frozen=True, slots=True)
class StepDecision:
    """How one step was decided."""

    candidate: Any
    votes: list[int]  # the winner's votes first, then the others' in descending order
    samples: int
    rounds: int
    replayed: bool = False  # rebuilt from a journal: nothing was drawn for it in this session
    by_agent: dict[str, AgentVotes] | None = None  # with a mix: what each agent drew and voted


@dataclass(slots=True)
class AgentVotes:
    """One agent's part in one step of a mixed race: samples drawn, replies red-flagged, candidates voted."""

    samples: int = 0
    red_flags: int = 0
    votes: list[Any] = field(default_factory=list)


class Observer:
    """Base class of observers: every hook does nothing; override the ones you need. In
    ``step_decided``, ``state`` is the state the step was decided in (before the candidate is applied)."""

    def chain_started(self, chain: ChainInfo, state: Any) -> None: ...
    def step_started(self, chain: ChainInfo, step: int, state: Any, prompt: str) -> None: ...
    def sampled(self, chain: ChainInfo, step: int, samples: Sequence[Sample]) -> None: ...
    def red_flag(self, chain: ChainInfo, step: int, flagged: Flagged) -> None: ...
    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None: ...
    def chain_reset(self, chain: ChainInfo, reason: str) -> None: ...
    def chain_finished(self, chain: ChainInfo, state: Any) -> None: ...


Hooks = tuple[Callable[..., None], ...]


def hooks(observers: Iterable[Observer], event: str) -> Hooks:
    """The bound ``event`` hooks of the observers that override it, in order."""
    base = getattr(Observer, event)
    return tuple(getattr(o, event) for o in observers if getattr(type(o), event) is not base)


class Emitter(NamedTuple):
    """The hooks of a set of observers, one tuple per event, looked up once (``emitter``)."""

    chain_started: Hooks
    step_started: Hooks
    sampled: Hooks
    red_flag: Hooks
    step_decided: Hooks
    chain_reset: Hooks
    chain_finished: Hooks


def emitter(observers: Iterable[Observer]) -> Emitter:
    listening = list(observers)
    return Emitter(*(hooks(listening, event) for event in Emitter._fields))
