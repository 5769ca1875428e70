"""The replayer: journalled decisions applied, in journal order, to the states of a plan's chains.

One implementation for every reader of a journal: resume (the scheduler rebuilds each chain's state
and statistics before the run goes on), ``maker verify`` (checks each step against the rules and the
oracle) and training from verified journals. Records stream through it one at a time: it keeps each
chain's current state and step count, never the records, so its memory does not grow with the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from maker.errors import JournalError, StepError
from maker.planner import Plan, Subtask, start_of
from maker.task import Task

# (the chain's subtask, its task, record, state before the step, candidate)
PlanVisit = Callable[[Subtask, Task, dict[str, Any], Any, Any], None]


class PlanReplay:
    """A plan's chains rebuilt from step records in journal order.

    Chains that ran at once interleave in a journal, so each chain keeps its own state. A chain's
    start comes from its dependencies' states when its first record arrives: the scheduler starts a
    chain only after those have ended, so they are complete then, and a record for one of them after
    that point is a ``JournalError``."""

    def __init__(self, task: Task, plan: Plan) -> None:
        self.task, self.plan, self.order = task, plan, plan.order()
        self.states: dict[str, Any] = {}  # chains begun: the state after their last record
        self.steps: dict[str, int] = {}
        self._sealed: set[str] = set()  # chains another chain has started from
        self._chains = {name: (plan.subtask(name), plan.subtask(name).task or task) for name in self.order}

    def name_of(self, index: int | None) -> str:
        """The plan name of a record's chain index (None: the one chain of a depth-0 run)."""
        if index is None and len(self.order) == 1:
            return self.order[0]
        if isinstance(index, int) and 0 <= index < len(self.order):
            return self.order[index]
        raise JournalError(f"the journal has a record of chain {index!r}, but this plan's chains are 0 to {len(self.order) - 1}")

    def state_of(self, name: str) -> Any:
        """The chain's state now; its start (from its dependencies, which are then final) if no record came yet."""
        if name not in self.states:
            sub = self.plan.subtask(name)
            for dep in sub.after:
                self.state_of(dep)
                self._sealed.add(dep)
            self.states[name], self.steps[name] = start_of(sub, self.states), 0
        return self.states[name]

    def apply(self, record: dict[str, Any], visit: PlanVisit | None = None) -> None:
        """One record: ``visit`` sees it with the state before it, then its candidate is applied."""
        name = self.name_of(record.get("chain"))
        if name in self._sealed:
            raise JournalError(f"the journal has step {record['step']} of chain {name!r} after a chain that starts "
                               "from its end began: the records are out of order")
        state = self.state_of(name)
        sub, task = self._chains[name]
        candidate = task.candidate_from_json(record["candidate"])
        if visit is not None:
            visit(sub, task, record, state, candidate)
        try:
            self.states[name] = task.apply(state, candidate)
        except Exception as exc:
            raise StepError(f"replaying the journal: task.apply raised {type(exc).__name__}: {exc}",
                            step=record["step"], state=state) from exc
        self.steps[name] += 1

    def finish(self) -> tuple[dict[str, Any], Any]:
        """Every chain's end state (its start if it has no records) and the plan's final state."""
        ends = {name: self.state_of(name) for name in self.order}
        return ends, self.plan.finish(ends) if self.plan.finish is not None else ends[self.order[-1]]


def replay_plan(task: Task, plan: Plan, records: Iterable[dict[str, Any]],
                visit: PlanVisit | None = None) -> tuple[dict[str, Any], Any]:
    """Replay ``records`` (journal order, as ``maker.journal.JournalReader.records`` yields them) over
    ``plan``; ``visit`` sees every step. Returns each chain's end state and the final state."""
    replay = PlanReplay(task, plan)
    for record in records:
        replay.apply(record, visit)
    return replay.finish()
