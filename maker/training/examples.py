"""Training examples for a microagent: (prompt, reply) pairs a perfect model would have produced.

Two sources, one shape:

- ``oracle_examples``: the task's ``training_states`` (by default random states along the oracle's
  trajectory of this instance), each with ``format_reply`` of the oracle's answer. The oracle is
  used here as training data, never by a run's votes.
- ``journal_examples``: the decided steps of earlier runs' journals, which must verify first
  (``maker verify``); each step's prompt comes from replaying the journal and its reply is
  ``format_reply`` of the decided candidate. No oracle is needed.

Each example keeps the prompt as its identity (``key``): equal prompts are the same state to a
model, so held-out checks exclude them by prompt.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maker.errors import ConfigError, TaskError
from maker.task import Task

__all__ = ["Example", "journal_examples", "oracle_examples", "trajectory_states"]

TRAJECTORY_CAP = 2_000_000  # the default sampler walks at most this many oracle steps


@dataclass(frozen=True, slots=True)
class Example:
    prompt: str
    reply: str


def trajectory_states(task: Task, rng: random.Random, count: int) -> list[Any]:
    """``count`` states drawn uniformly (with repeats only when the trajectory is shorter) from the
    oracle's trajectory of ``task`` from its initial state: the default of ``Task.training_states``."""
    if not task.has_oracle:
        raise ConfigError(f"task {task.name!r} has no oracle: train it from verified journals (--from-journal)")
    length = task.total_steps() or TRAJECTORY_CAP
    state, walked = task.initial_state(), []
    for step in range(min(length, TRAJECTORY_CAP)):
        if task.is_done(state):
            break
        walked.append(state)
        try:
            state = task.apply(state, task.oracle(state))
        except Exception as exc:
            raise TaskError(f"the oracle's trajectory failed at step {step}: {type(exc).__name__}: {exc}") from exc
    if not walked:
        raise TaskError(f"task {task.name!r} is done at its initial state: there is nothing to train on")
    if count <= len(walked):
        return rng.sample(walked, count)
    return [rng.choice(walked) for _ in range(count)]


def oracle_examples(task: Task, rng: random.Random, count: int) -> list[Example]:
    """``count`` examples from the task's training states and its oracle."""
    examples = []
    for state in task.training_states(rng, count):
        examples.append(Example(task.prompt(state), task.format_reply(state, task.oracle(state))))
    return examples


def journal_examples(task_spec: str | None, paths: Sequence[str | os.PathLike[str]]) -> list[Example]:
    """Every decided step of the journals at ``paths``, after each has verified. The task is rebuilt
    from each journal's header (or ``task_spec``), so journals of different instances mix."""
    from maker.journal import read_journal, records_by_chain
    from maker.loading import load_task
    from maker.planner import plan_for, start_of
    from maker.replay import replay_chain
    from maker.verify import verify_journal

    examples: list[Example] = []
    for path in paths:
        report = verify_journal(path, task_spec)
        if not report["valid"]:
            raise ConfigError(f"journal {str(path)!r} does not verify (maker verify {path}): only the steps of a "
                              f"complete, rule-abiding run make training data; its report: {report}")
        contents = read_journal(path)
        header = contents.header
        task = load_task(task_spec or header.get("spec") or header["task"], **header.get("params", {}))
        plan = plan_for(task, header.get("config", {}).get("depth", 0))
        order, grouped, results = plan.order(), records_by_chain(contents), {}
        for index, name in enumerate(order):
            sub = plan.subtask(name)
            chain_task = sub.task or task

            def keep(record: dict[str, Any], state: Any, candidate: Any, chain_task: Task = chain_task) -> None:
                examples.append(Example(chain_task.prompt(state), chain_task.format_reply(state, candidate)))

            records = grouped.get(None if len(order) == 1 else index, [])
            results[name] = replay_chain(chain_task, start_of(sub, results), records, visit=keep)
    return examples
