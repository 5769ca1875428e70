"""Training examples for a microagent: (prompt, reply) pairs a perfect model would have produced.

Two sources, one shape:

- ``oracle_examples``: the task's ``training_states`` (by default random states along the oracle's
  trajectory of this instance, ``maker.task.trajectory_sample``), each with ``format_reply`` of the oracle's answer. The oracle is
  used here as training data, never by a run's votes.
- ``journal_examples``: the decided steps of earlier runs' journals, which must verify first
  (``maker verify``); each step's prompt comes from replaying the journal and its reply is
  ``format_reply`` of the decided candidate. No oracle is needed. Each keeps the step's kind and
  whether it was hard (``is_hard``), for ``mined``.
- ``mined``: journal examples weighted for what runs found hard: a hard step repeated, and rare kinds
  of step repeated towards the common ones.

Each example keeps the prompt as its identity (``key``): equal prompts are the same state to a
model, so held-out checks exclude them by prompt.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maker.errors import ConfigError
from maker.planner import Subtask
from maker.task import Task
from maker.verify import verify_journal

PARAPHRASED_SHARE = 0.25  # of oracle examples asked through a task's rewording, when it has them

__all__ = ["Example", "is_hard", "journal_examples", "mined", "oracle_examples"]


@dataclass(frozen=True, slots=True)
class Example:
    prompt: str
    reply: str
    kind: str | None = None  # the step's kind (Task.kind), from a journal that records it
    hard: bool = False  # a journal step that was contested (votes split, more than one round) or escalated


def is_hard(record: dict[str, Any]) -> bool:
    """Whether a journal record is a hard step: its votes split, it took more than one round, or it escalated."""
    return len(record.get("votes", ())) > 1 or record.get("rounds", 1) > 1 or bool(record.get("escalated"))


def oracle_examples(task: Task, rng: random.Random, count: int) -> list[Example]:
    """``count`` examples from the task's training states and its oracle. A task that rewords its prompts
    (``Task.paraphrase``) has a quarter of them asked through a rewording, so that a step the escalation
    ladder asks that way is asked in words the microagent has met."""
    return [Example(_asked(task, s, rng), task.format_reply(s, task.oracle(s))) for s in task.training_states(rng, count)]


def _asked(task: Task, state: Any, rng: random.Random) -> str:
    if task.has_paraphrase and rng.random() < PARAPHRASED_SHARE:
        variants = [worded for worded in (task.paraphrase(state, v) for v in range(1, 5)) if worded is not None]
        if variants:
            return rng.choice(variants)
    return task.prompt(state)


def journal_examples(task_spec: str | None, paths: Sequence[str | os.PathLike[str]]) -> list[Example]:
    """Every decided step of the journals at ``paths``, each journal replayed once: it must verify, and
    its examples are collected in the same pass. The task is rebuilt from each journal's header (or
    ``task_spec``), so journals of different instances mix."""
    examples: list[Example] = []

    def keep(sub: Subtask, chain_task: Task, record: dict[str, Any], state: Any, candidate: Any) -> None:
        examples.append(Example(chain_task.prompt(state), chain_task.format_reply(state, candidate), record.get("kind"),
                                is_hard(record)))

    for path in paths:  # a journal that does not verify stops it all, so what it added is never returned
        report = verify_journal(path, task_spec, visit=keep)
        if not report["valid"]:
            raise ConfigError(f"journal {str(path)!r} does not verify (maker verify {path}): only the steps of a "
                              f"complete, rule-abiding run make training data; its report: {report}")
    return examples


KIND_REPEAT_CAP = 8  # a rare kind's examples are repeated at most this many times


def mined(examples: Sequence[Example], hard_repeat: int = 4, balance_kinds: bool = True) -> list[Example]:
    """``examples`` with each hard one ``hard_repeat`` times, and, with ``balance_kinds``, each example of a kind
    repeated sqrt(most common kind's count / its kind's count) times (rounded, at most ``KIND_REPEAT_CAP``): rare
    kinds of step are seen more, without drowning the common ones.

    >>> steps = [Example("a", "1", "big"), Example("b", "2", "small", hard=True)] + [Example(str(i), "x", "small") for i in range(8)]
    >>> [e.prompt for e in mined(steps, hard_repeat=2)].count("a"), [e.prompt for e in mined(steps, hard_repeat=2)].count("b")
    (3, 2)
    """
    counts = Counter(e.kind for e in examples)
    top = max(counts.values(), default=0)
    out: list[Example] = []
    for e in examples:
        times = hard_repeat if e.hard else 1
        if balance_kinds and e.kind is not None:
            times *= min(KIND_REPEAT_CAP, max(1, round(math.sqrt(top / counts[e.kind]))))
        out.extend([e] * times)
    return out
