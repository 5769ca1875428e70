"""Training examples for a microagent: (prompt, reply) pairs a perfect model would have produced.

Two sources, one shape:

- ``oracle_examples``: the task's ``training_states`` (by default random states along the oracle's
  trajectory of this instance, ``maker.task.trajectory_sample``), each with ``format_reply`` of the oracle's answer. The oracle is
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

from maker.errors import ConfigError
from maker.planner import Subtask
from maker.task import Task
from maker.verify import verify_journal

__all__ = ["Example", "journal_examples", "oracle_examples"]


@dataclass(frozen=True, slots=True)
class Example:
    prompt: str
    reply: str


def oracle_examples(task: Task, rng: random.Random, count: int) -> list[Example]:
    """``count`` examples from the task's training states and its oracle."""
    return [Example(task.prompt(s), task.format_reply(s, task.oracle(s))) for s in task.training_states(rng, count)]


def journal_examples(task_spec: str | None, paths: Sequence[str | os.PathLike[str]]) -> list[Example]:
    """Every decided step of the journals at ``paths``, each journal replayed once: it must verify, and
    its examples are collected in the same pass. The task is rebuilt from each journal's header (or
    ``task_spec``), so journals of different instances mix."""
    examples: list[Example] = []

    def keep(sub: Subtask, chain_task: Task, record: dict[str, Any], state: Any, candidate: Any) -> None:
        examples.append(Example(chain_task.prompt(state), chain_task.format_reply(state, candidate)))

    for path in paths:  # a journal that does not verify stops it all, so what it added is never returned
        report = verify_journal(path, task_spec, visit=keep)
        if not report["valid"]:
            raise ConfigError(f"journal {str(path)!r} does not verify (maker verify {path}): only the steps of a "
                              f"complete, rule-abiding run make training data; its report: {report}")
    return examples
