"""The replayers: journalled decisions applied to a chain's start state, in order, and a whole plan's
chains replayed one after another.

One implementation for every reader of a journal: resume (the scheduler rebuilds each chain's
state and statistics with ``replay_chain``), ``maker verify`` (checks each step against the rules
and the oracle) and training from verified journals (both through ``replay_plan``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from maker.errors import StepError
from maker.planner import Plan, Subtask, start_of
from maker.task import Task

Visit = Callable[[dict[str, Any], Any, Any], None]  # (record, state before the step, candidate)
# (the chain's subtask, its task, record, state before the step, candidate)
PlanVisit = Callable[[Subtask, Task, dict[str, Any], Any, Any], None]


def replay_chain(task: Task, state: Any, records: Iterable[dict[str, Any]], visit: Visit | None = None) -> Any:
    """Apply each record's candidate to ``state`` in turn; ``visit`` sees every step before it is
    applied. Returns the state after the last record."""
    for record in records:
        candidate = task.candidate_from_json(record["candidate"])
        if visit is not None:
            visit(record, state, candidate)
        try:
            state = task.apply(state, candidate)
        except Exception as exc:
            raise StepError(f"replaying the journal: task.apply raised {type(exc).__name__}: {exc}",
                            step=record["step"], state=state) from exc
    return state


def replay_plan(task: Task, plan: Plan, records: Mapping[int | None, Sequence[dict[str, Any]]],
                visit: PlanVisit | None = None) -> tuple[dict[str, Any], Any]:
    """Replay every chain of ``plan`` in order from its journalled ``records`` (by chain index, as
    ``maker.journal.records_by_chain`` groups them; None in a one-chain run), each from the start its
    dependencies give. ``visit`` sees every step. Returns each chain's end state and the final state."""
    order, ends = plan.order(), {}
    for index, name in enumerate(order):
        sub = plan.subtask(name)
        chain_task = sub.task or task
        seen = None if visit is None else partial(visit, sub, chain_task)
        ends[name] = replay_chain(chain_task, start_of(sub, ends), records.get(None if len(order) == 1 else index, ()), seen)
    return ends, plan.finish(ends) if plan.finish is not None else ends[order[-1]]
