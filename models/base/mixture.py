"""The shared base's training mixture: step data of the built-in tasks and generic step skills.

The built-in tasks give their own examples (``training_states`` + the oracle + ``format_reply``:
what ``maker train`` uses). The generic skills are the moves that steps of many tasks are made of,
in formats of their own (no task's prompt), so that an adapter for a new task starts from useful
circuits: copy a list with one change, add digits with a carry, compare, swap, count, increment.

    python models/base/mixture.py       # print a few examples of each source
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

from maker_tasks.hanoi import HanoiTask
from maker_tasks.multiply import MultiplyTask

from maker.training.examples import Example, oracle_examples

Skill = Callable[[random.Random], Example]


def _list(rng: random.Random, low: int = 1, high: int = 12) -> list[int]:
    return [rng.randrange(32) for _ in range(rng.randint(low, high))]


def copy_with_change(rng: random.Random) -> Example:
    items = _list(rng)
    i, value = rng.randrange(len(items)), rng.randrange(32)
    changed = items[:i] + [value] + items[i + 1:]
    return Example(f"set item {i} to {value}: {items}\n", str(changed))


def add_digits(rng: random.Random) -> Example:
    a, b, c = rng.randrange(10), rng.randrange(10), rng.randrange(3)
    return Example(f"add {a} + {b} + {c}\n", f"sum = {a + b + c}")


def compare(rng: random.Random) -> Example:
    a, b = rng.randrange(10 ** rng.randint(1, 4)), rng.randrange(10 ** rng.randint(1, 4))
    return Example(f"larger of {a} and {b}?\n", f"larger = {max(a, b)}")


def swap(rng: random.Random) -> Example:
    a, b = rng.randrange(1000), rng.randrange(1000)
    return Example(f"swap ({a}, {b})\n", f"({b}, {a})")


def count(rng: random.Random) -> Example:
    items = [rng.randrange(6) for _ in range(rng.randint(1, 14))]
    x = rng.randrange(6)
    return Example(f"count {x} in {items}\n", f"count = {items.count(x)}")


def increment(rng: random.Random) -> Example:
    n = rng.randrange(10 ** rng.randint(1, 6))
    if rng.random() < 0.3:  # carries through trailing nines
        n = n - n % 10 ** rng.randint(1, 3) + 10 ** rng.randint(1, 3) - 1
    return Example(f"next after {n}?\n", f"next = {n + 1}")


SKILLS: list[Skill] = [copy_with_change, add_digits, compare, swap, count, increment]
_HANOI = HanoiTask(disks=20)
_MULTIPLY = MultiplyTask(digits=2)
# Shares of each batch. Hanoi is the hardest and longest task, so it gets most of the compute.
SHARES = {"hanoi": 0.55, "multiply": 0.15, "skills": 0.30}


def draw(rng: random.Random, n: int) -> list[Example]:
    """``n`` examples of the mixture, in random order."""
    counts = {name: int(n * share) for name, share in SHARES.items()}
    counts["hanoi"] += n - sum(counts.values())
    examples = oracle_examples(_HANOI, rng, counts["hanoi"]) + oracle_examples(_MULTIPLY, rng, counts["multiply"])
    examples += [rng.choice(SKILLS)(rng) for _ in range(counts["skills"])]
    rng.shuffle(examples)
    return examples


def corpus(n: int, seed: int) -> list[str]:
    """Texts for learning the tokenizer's merges: prompts and replies of ``n`` examples."""
    rng = random.Random(seed)
    return [text for e in draw(rng, n) for text in (e.prompt, e.reply)]


if __name__ == "__main__":
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for example in [*oracle_examples(_HANOI, rng, 2), *oracle_examples(_MULTIPLY, rng, 2), *(s(rng) for s in SKILLS)]:
        print(repr(example.prompt), "->", repr(example.reply))
