"""Prompts a general pretrained LLM can follow: a task's own prompt with solved examples before it.

A small model trained here reads a task's compact prompt. A general LLM asked the same question
tends to explain instead of answering, so a run may ask through a *few-shot completion prompt*
(``RunConfig.few_shot`` = N, ``maker run --few-shot N``): N solved examples, each the task's own
prompt for another state followed by the reply a perfect model writes for it (``format_reply`` of
the task's oracle on that state), then the prompt of the state being asked. The examples are drawn once per task from its
``training_states`` with a fixed seed, so every step of a run (and its resume) sees the same text;
a task with several kinds of step (``Task.kind``) gets examples of the asked step's kind.
The oracle answers only those other states, never the one being asked: an example whose prompt
equals the asked one is left out for a spare (or, with no spare, the prompt has one example fewer). Replies then end where the examples' replies end:
``stop_for`` gives the stop sequences a few-shot run uses unless the run names its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from maker.errors import ConfigError
from maker.task import Task

__all__ = ["FewShotPrompt", "prompter", "stop_for"]

SHOT_SEPARATOR = "\n\n"  # between one solved example and the next
SPARES = 2  # examples beyond N, to stand in for one that happens to be the state asked
DRAWN_PER_SHOT = 8  # training states drawn per example: a task with several kinds of step needs each kind's


class FewShotPrompt:
    """``task``'s prompt with ``shots`` solved examples of other states of the same kind (``Task.kind``) before it.

    >>> from tests.toy import Countdown  # doctest: +SKIP
    >>> FewShotPrompt(Countdown(start=9), 2)(5)  # doctest: +SKIP
    'What is 7 minus one?\\n6\\n\\nWhat is 3 minus one?\\n2\\n\\nWhat is 5 minus one?'
    """

    def __init__(self, task: Task, shots: int, seed: int = 0) -> None:
        if shots < 1:
            raise ConfigError(f"a few-shot prompt needs at least one example, got {shots}")
        missing = [name for name, has in (("oracle", task.has_oracle),
                                          ("format_reply", type(task).format_reply is not Task.format_reply)) if not has]
        if missing:
            raise ConfigError(f"task {task.name!r} cannot build few-shot prompts: it defines no {' or '.join(missing)} "
                              "(its solved examples come from them)")
        self.task, self.shots = task, shots
        try:
            states = task.training_states(random.Random(seed), DRAWN_PER_SHOT * (shots + SPARES))
            solved = [(task.kind(s), task.prompt(s), task.format_reply(s, task.oracle(s))) for s in states]
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"task {task.name!r}: building its few-shot examples failed: {type(exc).__name__}: {exc}") from exc
        # Per kind, the first shots + SPARES distinct examples (a repeated one teaches nothing).
        self.examples: dict[str | None, list[tuple[str, str]]] = {}
        for kind, prompt, reply in dict.fromkeys(solved):
            kept = self.examples.setdefault(kind, [])
            if len(kept) < shots + SPARES:
                kept.append((prompt, reply))
        if short := [kind for kind, kept in self.examples.items() if len(kept) < shots]:
            raise ConfigError(f"task {task.name!r} gave {len(self.examples[short[0]])} distinct solved examples"
                              f"{'' if short[0] is None else f' of kind {short[0]!r}'} from its training states; a "
                              f"{shots}-shot prompt needs {shots}")
        self.replies_are_lines = all("\n" not in reply.strip("\n") for kept in self.examples.values() for _, reply in kept)
        self._usual = {kind: "".join(_block(*example) for example in kept[:shots]) for kind, kept in self.examples.items()}

    def __call__(self, state: Any) -> str:
        asked, kind = self.task.prompt(state), self.task.kind(state)
        kept = self.examples.get(kind)
        if kept is None:
            raise ConfigError(f"task {self.task.name!r}: no solved example of kind {kind!r} among its training states "
                              f"(it has {', '.join(map(repr, self.examples))})")
        if all(prompt != asked for prompt, _ in kept[:self.shots]):
            return self._usual[kind] + asked
        # The state asked is one of the examples: never show its answer, take a spare instead.
        others = [(prompt, reply) for prompt, reply in kept if prompt != asked][:self.shots]
        return "".join(_block(prompt, reply) for prompt, reply in others) + asked

    def stop(self) -> tuple[str, ...]:
        """Where a reply ends: at its line's end if every example's reply is one line, else at the blank
        line that ends an example."""
        return ("\n",) if self.replies_are_lines else (SHOT_SEPARATOR,)


def _block(prompt: str, reply: str) -> str:
    """One solved example: the prompt, its reply (on the prompt's line unless the prompt ends one), a blank line."""
    joiner = "" if prompt.endswith(("\n", " ")) else "\n"
    return f"{prompt}{joiner}{reply.strip(chr(10))}{SHOT_SEPARATOR}"


# Each task's few-shot prompts, made once: every chain of a plan asks through its task's, and drawing the
# examples may walk the task's whole trajectory.
_MADE: WeakKeyDictionary[Task, dict[tuple[int, int], FewShotPrompt]] = WeakKeyDictionary()


def prompter(task: Task, few_shot: int | None, seed: int = 0) -> Callable[[Any], str]:
    """How a run asks ``task``: its own ``prompt``, or a ``FewShotPrompt`` with ``few_shot`` examples."""
    if not few_shot:
        return task.prompt
    try:
        made = _MADE.setdefault(task, {})
    except TypeError:  # a task that cannot be weakly referenced or hashed: made for each chain
        return FewShotPrompt(task, few_shot, seed)
    if (few_shot, seed) not in made:
        made[few_shot, seed] = FewShotPrompt(task, few_shot, seed)
    return made[few_shot, seed]


def stop_for(prompt: Callable[[Any], str], configured: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The strings that end replies to ``prompt`` (a ``prompter``): the run's own (``RunConfig.stop``,
    ``configured``) when it sets them, even to none; else a few-shot prompt's; else none."""
    if configured is not None:
        return configured
    return prompt.stop() if isinstance(prompt, FewShotPrompt) else ()
