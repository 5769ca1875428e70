"""The chain replayer: journalled decisions applied to a chain's start state, in order.

One implementation for every reader of a journal: resume (the scheduler rebuilds each chain's
state and statistics), ``maker verify`` (checks each step against the rules and the oracle) and
training from verified journals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from maker.errors import StepError
from maker.task import Task

Visit = Callable[[dict[str, Any], Any, Any], None]  # (record, state before the step, candidate)


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
