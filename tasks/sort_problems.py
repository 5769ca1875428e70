"""Sorting statements, decomposed by agents (``maker solve``): the MAKER paper's App. F sorting problems.

"Sort the following list of integers in ascending order ... [5, -3, 12]" is the problem. The decomposer sees
only the list's length (the engine holds the numbers) and replies ``none`` (atomic) or ``count = M``: the first M
numbers are P1, the rest P2, composed by merging the two sorted parts. Both the solver and the composer are
chains of one microstep, a comparison of two digits: the composer merges two sorted lists one comparison at a
time, each comparison one digit place at a time ("Which digit is larger, 3 or 5?", of the two numbers shifted to
non-negative and written at one width), and the solver sorts a short list by inserting each number with such a
merge. No prompt shows more than two digits, however long the list.

The rule every node's result must pass is derived from the problem alone: sorted, and the same multiset.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from maker import Question, RedFlag, RedFlagReason, Task, TaskError
from maker.problems import ATOMIC, DecomposerTask, Decomposing, ProblemFamily

_STATEMENT = re.compile(r"Sort the following list of integers.*?(\[[^\]]*\])", re.S)
# Replies in words our shared base writes well ("none", "count" and "larger" are tokens of its tokenizer).
_SPLIT = re.compile(r"^\s*(?:(none)|count\s*=\s*(\d{1,5}))\s*$")
_LARGER = re.compile(r"^\s*larger\s*=\s*(\d)\s*$")
MAX_ITEMS = 100_000
STATEMENT_PREFIX = ("\nSort the following list of integers in ascending order and output ONLY the JSON list\n"
                    "on a single line after '####':\n")


class Merging(NamedTuple):
    """A merge in progress: two sorted runs, the merged part so far, numbers still to insert one by one, the
    offset each number is shown with (``shown``), and the digit place the runs' first numbers are compared at
    (0: the first digit of the two written at one width; it moves on while their digits are equal)."""

    left: tuple[int, ...]
    right: tuple[int, ...]
    out: tuple[int, ...]
    pending: tuple[int, ...] = ()
    offset: int = 0
    place: int = 0


def shown(problem: tuple[int, ...] | list[int]) -> int:
    """The offset a comparison shows a problem's numbers with: none when none is negative, else enough to make them
    all non-negative (10,000 for the paper's lists). Order is unchanged, and no reply needs a minus sign: our shared
    base never learnt to write one, and a LoRA adapter cannot make it likely (its samples came out garbled)."""
    lowest = min(problem, default=0)
    return 0 if lowest >= 0 else max(10_000, -lowest)


def settle(state: Merging) -> Merging:
    """Finish what needs no comparison: a run left alone is copied over; then the next pending number starts a
    merge with what is sorted so far (insertion). Done: nothing left to compare (``left`` and ``right`` empty)."""
    while not (state.left and state.right):
        merged = state.out + state.left + state.right
        if not state.pending:
            return Merging((), (), merged, (), state.offset)
        state = Merging(state.pending[:1], merged, (), state.pending[1:], state.offset)  # place 0: a new comparison
    return state


class CompareStep(Task):
    """One microstep of a merge: one digit place of the two runs' first numbers, written at one width with leading
    zeros ("Which digit is larger, 3 or 5?"). Equal digits move on to the next place; the first unequal pair
    decides, and the smaller number moves to the output (equal numbers: the left's, so the merge stays stable).
    A prompt holds two digits and nothing else: the step has 100 states, and a microagent can be checked on every
    one of them. Earlier forms asked for the larger of two whole numbers and copied it into the reply; our
    microagent mixed the digits of close numbers (13526 for 13525 against 13426) in about 1 comparison in 250
    of a 500-number merge sort, the same way at every sample, so no vote recovered them. A reply naming a label
    ("larger = a") did not train (207 to 268 of 500 held-out replies wrong from the 3rd to the 7th minute)."""

    name = "sort-compare"
    agent = "sort-compare"

    def prompt(self, state: Merging) -> str:
        a, b = _digits(state)
        return f"Which digit is larger, {a} or {b}? Reply with exactly: larger = <the digit>"

    def parse(self, state: Merging, reply: str) -> int:
        found = _LARGER.match(reply)
        if found is None:
            raise RedFlag("no 'larger = D' reply")
        digit = int(found.group(1))
        if digit not in _digits(state):
            raise RedFlag(f"{digit} is neither of the two digits", RedFlagReason.INVALID)
        return digit

    def apply(self, state: Merging, candidate: int) -> Merging:
        a, b = _digits(state)
        if a == b and state.place + 1 < _width(state):  # equal so far: the next place decides
            return state._replace(place=state.place + 1)
        if a != b and candidate == a:  # the left's number is larger: the right's first moves
            return settle(state._replace(right=state.right[1:], out=state.out + state.right[:1], place=0))
        return settle(state._replace(left=state.left[1:], out=state.out + state.left[:1], place=0))

    def is_done(self, state: Merging) -> bool:
        return not (state.left and state.right)

    def oracle(self, state: Merging) -> int:
        return max(_digits(state))

    def format_reply(self, state: Merging, candidate: int) -> str:
        return f"larger = {candidate}"

    def plausible_mistake(self, state: Merging, candidate: int, rng: random.Random) -> int:
        return min(_digits(state))

    def paraphrase(self, state: Merging, variant: int) -> str | None:
        """The two digits the other way round (the escalation ladder's first rung)."""
        if variant != 1:
            return None
        a, b = _digits(state)
        return f"Which digit is larger, {b} or {a}? Reply with exactly: larger = <the digit>"

    def run_defaults(self) -> dict[str, object]:
        # a step still undecided after 8 samples is asked the other way round, then with twice the k
        return {"max_tokens": 8, "escalation": {"ladder": ["paraphrase", "k"], "after": 8}}

    def initial_state(self) -> Merging:
        return settle(Merging((), (), (), (3, -1, 2), shown((3, -1, 2))))

    def training_states(self, rng: random.Random, count: int) -> list[Merging]:
        """Every pair of digits, drawn uniformly: the whole of the step's 100 states."""
        return [Merging((rng.randrange(10),), (rng.randrange(10),), ()) for _ in range(count)]


def _width(state: Merging) -> int:
    """The width the two compared numbers are written at (the longer one's digits, shifted by the offset)."""
    return max(len(str(state.left[0] + state.offset)), len(str(state.right[0] + state.offset)))


def _digits(state: Merging) -> tuple[int, int]:
    """The digits at ``state.place`` of the two compared numbers, as shown at one width."""
    width = _width(state)
    a, b = (str(n + state.offset).zfill(width) for n in (state.left[0], state.right[0]))
    return int(a[state.place]), int(b[state.place])


class SortProblems(ProblemFamily):
    """Lists of integers to sort, stated as the paper states them."""

    name = "sort"
    decomposer_agent = "sort-decompose"
    models = {agent: Path(__file__).resolve().parent.parent / "models" / "adapters" / agent  # our microagents
              for agent in ("sort-decompose", "sort-compare")}
    example = STATEMENT_PREFIX + "[5, -3, 12, 0, 7, 7, -10000]\n"

    def parse(self, question: str) -> tuple[int, ...]:
        found = _STATEMENT.search(question)
        if found is None:
            raise TaskError(f"not a sorting statement: {question[:80]!r}; expected 'Sort the following list of "
                            "integers ...' and a JSON list such as [3, -1, 2]")
        try:
            numbers = json.loads(found.group(1))
        except ValueError as exc:
            raise TaskError(f"the list {found.group(1)[:60]!r} is not JSON: {exc}") from None
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers) or len(numbers) > MAX_ITEMS:
            raise TaskError(f"the list must hold at most {MAX_ITEMS:,} whole numbers")
        return tuple(numbers)

    def describe(self, problem: tuple[int, ...]) -> str:
        shown = ", ".join(map(str, problem[:6])) + (", ..." if len(problem) > 6 else "")
        return f"sort [{shown}] ({len(problem)} numbers)"

    # --- the decomposer ---------------------------------------------------------------------------
    def split_prompt(self, problem: tuple[int, ...]) -> str:
        return f"Split a list of {len(problem)} numbers? Reply none if atomic, or count = M to take the first M numbers."

    def parse_split(self, problem: tuple[int, ...], reply: str) -> Any:
        found = _SPLIT.match(reply)
        if found is None:
            raise RedFlag("no 'none' or 'count = M' reply")
        return ATOMIC if found.group(1) else int(found.group(2))

    def format_split(self, problem: tuple[int, ...], split: Any) -> str:
        return "none" if split == ATOMIC else f"count = {split}"

    def parts(self, problem: tuple[int, ...], split: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if not isinstance(split, int) or not 1 <= split < len(problem):
            raise ValueError(f"M = {split} leaves a part empty: M must be 1 to {len(problem) - 1}")
        return problem[:split], problem[split:]

    def size(self, problem: tuple[int, ...]) -> int:
        return len(problem)

    def oracle_split(self, problem: tuple[int, ...]) -> Any:
        return ATOMIC if len(problem) <= 1 else len(problem) // 2

    def mistaken_split(self, problem: tuple[int, ...], split: Any, rng: random.Random) -> Any:
        """A neighbour of the good split (valid, less balanced), atomic, or an empty part (red-flagged)."""
        if split == ATOMIC:
            return 1
        return rng.choice([*(m for m in (split - 1, split + 1) if 1 <= m < len(problem)), ATOMIC, len(problem)])

    @staticmethod
    def paper_set(length: int, count: int, seed: int) -> list[Question]:
        """The paper's lists (its public generator): ``Random(seed)``, ``length`` draws of randint(-10000, 10000)
        per list; the answer (compact JSON) only counts errors afterwards."""
        rnd, questions = random.Random(seed), []
        for number in range(count):
            numbers = [rnd.randint(-10000, 10000) for _ in range(length)]
            questions.append(Question(id=str(number), question=STATEMENT_PREFIX + str(numbers) + "\n",
                                      answer=json.dumps(sorted(numbers), separators=(",", ":"))))
        return questions

    def training_problems(self, rng: random.Random, count: int) -> list[tuple[int, ...]]:
        """Lengths 1 to 1,000, short ones more often (the decomposer sees only the length)."""
        return [tuple(range(int(10 ** rng.uniform(0, 3)))) or (0,) for _ in range(count)]

    # --- the solver and the composer ----------------------------------------------------------------
    def solver(self, problem: tuple[int, ...]) -> tuple[Task, Any]:
        return CompareStep(), settle(Merging((), (), (), tuple(problem), shown(problem)))

    def composer(self, problem: tuple[int, ...], split: Any, left: Any, right: Any) -> tuple[Task, Any]:
        return CompareStep(), settle(Merging(tuple(left), tuple(right), (), (), shown(problem)))

    def result(self, task: Task, state: Merging) -> list[int]:
        return list(state.out)

    def rule(self, problem: tuple[int, ...], result: Any) -> str | None:
        first = next((i for i, (a, b) in enumerate(zip(result, result[1:], strict=False)) if a > b), None)
        if first is not None:
            return f"not sorted: {result[first]} before {result[first + 1]} (positions {first} and {first + 1})"
        if Counter(result) != Counter(problem):
            return "not the same numbers as the problem's list"
        return None

    def answer(self, problem: tuple[int, ...], result: Any) -> str:
        return json.dumps(list(result), separators=(",", ":"))

    def truth(self, problem: tuple[int, ...]) -> list[int]:
        return sorted(problem)


class SortDecompose(DecomposerTask):
    """The sorting decomposer as a task of its own, for ``maker train``."""

    name = "sort-decompose"

    def __init__(self, **params: Any) -> None:
        super().__init__(SortProblems())

    def initial_state(self) -> Decomposing:
        return Decomposing((5, -3, 12, 0), 0)

    def run_defaults(self) -> dict[str, object]:
        return {"max_tokens": 12}
