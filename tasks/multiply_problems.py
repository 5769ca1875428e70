"""Multiplication statements, decomposed by agents (``maker solve``): the MAKER paper's App. F problems.

"Multiply the following numbers:\\n46048 × 42098" is the problem a × b. The decomposer sees only the factors'
lengths (the engine holds the digits) and replies ``none`` (atomic) or ``count = M``: the second factor's last M
digits make P2 = a × b_low and the rest P1 = a × b_high, composed as P1 · 10^M + P2. An atomic problem is
long multiplication by the existing digit steps (``MultiplyTask`` in one chain); a composition adds the
shifted parts digit by digit (``SumStep``). Both are the multiplication agents' microsteps.

The rule every node's result must pass is derived from the problem alone: casting out nines and elevens
(the result mod 9 and mod 11 against the factors'), and at most len(a) + len(b) digits.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, NamedTuple

from maker_tasks.multiply import MAX_DIGITS, MultiplyTask, Number, SumStep, number_of, product_of, sum_start

from maker import Question, RedFlag, RedFlagReason, Task, TaskError
from maker.problems import ATOMIC, DecomposerTask, Decomposing, ProblemFamily

_STATEMENT = re.compile(r"^\s*(?:Multiply the following numbers:\s*)?(\d+)\s*[×xX*]\s*(\d+)\s*$")
# Replies in words our shared base writes well (its tokenizer has "none" and "count" as tokens; spelled out
# letter by letter, a word such as "split" stays improbable however long an adapter trains).
_SPLIT = re.compile(r"^\s*(?:(none)|count\s*=\s*(\d{1,4}))\s*$")
ATOM_DIGITS = 1  # the oracle's choice: a problem is atomic once its second factor has this many digits


class Product(NamedTuple):
    """a × b, decimal digit strings without leading zeros."""

    a: str
    b: str


def _digits(text: str) -> str:
    return text.lstrip("0") or "0"


class MultiplyProblems(ProblemFamily):
    """Products of two whole numbers, stated as the paper states them."""

    name = "multiply"
    decomposer_agent = "multiply-decompose"
    example = "Multiply the following numbers:\n46048 × 42098"
    # our microagents on the shared base: the decomposer's own adapter; the digit steps' adapter for the rest
    models = {"multiply-decompose": Path(__file__).resolve().parent.parent / "models" / "adapters" / "multiply-decompose",
              None: Path(__file__).resolve().parent.parent / "models" / "adapters" / "multiply"}

    def parse(self, question: str) -> Product:
        found = _STATEMENT.match(question)
        if found is None:
            raise TaskError(f"not a multiplication statement: {question[:80]!r}; expected 'Multiply the following "
                            "numbers:\\nA × B' (or 'A x B') with whole numbers A and B")
        a, b = (_digits(x) for x in found.groups())
        if max(len(a), len(b)) > MAX_DIGITS:
            raise TaskError(f"factors of up to {MAX_DIGITS} digits are supported, got {len(a)} and {len(b)}")
        return Product(a, b)

    def describe(self, problem: Product) -> str:
        short = lambda x: x if len(x) <= 24 else f"{x[:10]}...{x[-10:]} ({len(x)} digits)"  # noqa: E731
        return f"{short(problem.a)} × {short(problem.b)}"

    # --- the decomposer ---------------------------------------------------------------------------
    def split_prompt(self, problem: Product) -> str:
        return (f"Split {len(problem.a)} digits x {len(problem.b)} digits? Reply none if atomic, or count = M to cut "
                "off the second number's last M digits.")

    def parse_split(self, problem: Product, reply: str) -> Any:
        found = _SPLIT.match(reply)
        if found is None:
            raise RedFlag("no 'none' or 'count = M' reply")
        return ATOMIC if found.group(1) else int(found.group(2))

    def format_split(self, problem: Product, split: Any) -> str:
        return "none" if split == ATOMIC else f"count = {split}"

    def parts(self, problem: Product, split: Any) -> tuple[Product, Product]:
        if not isinstance(split, int) or not 1 <= split < len(problem.b):
            raise ValueError(f"M = {split} leaves a part empty: M must be 1 to {len(problem.b) - 1}")
        return Product(problem.a, problem.b[:-split]), Product(problem.a, _digits(problem.b[-split:]))

    def size(self, problem: Product) -> int:
        return len(problem.b)

    def oracle_split(self, problem: Product) -> Any:
        return ATOMIC if len(problem.b) <= ATOM_DIGITS else len(problem.b) // 2

    def mistaken_split(self, problem: Product, split: Any, rng: random.Random) -> Any:
        """A neighbour of the good split: another cut (valid, only less balanced), atomic, or a cut of every digit
        (the rules red-flag it); for an atomic problem, a cut."""
        if split == ATOMIC:
            return 1
        options = [m for m in (split - 1, split + 1) if 1 <= m < len(problem.b)]
        return rng.choice([*options, ATOMIC, len(problem.b)])  # the last leaves P1 empty: red-flagged

    @staticmethod
    def paper_set(digits: int, count: int, seed: int) -> list[Question]:
        """The paper's problems (its public generator): ``Random(seed)``; for each, d1 and d2 drawn in
        [digits, digits], then a and b of those lengths; the answer only counts errors afterwards."""
        rnd, questions = random.Random(seed), []
        for number in range(count):
            d1, d2 = rnd.randint(digits, digits), rnd.randint(digits, digits)
            a, b = rnd.randint(10 ** (d1 - 1), 10**d1 - 1), rnd.randint(10 ** (d2 - 1), 10**d2 - 1)
            questions.append(Question(id=str(number), question=f"Multiply the following numbers:\n{a} × {b}",
                                      answer=str(a * b)))
        return questions

    def training_problems(self, rng: random.Random, count: int) -> list[Product]:
        """Random factor lengths, 1 to 1000 digits, short ones more often (the decomposer sees only lengths)."""
        def length() -> int:
            return min(MAX_DIGITS, int(10 ** rng.uniform(0, 3)) + rng.randrange(2))
        return [Product("7" * length(), "3" * length()) for _ in range(count)]

    # --- the solver and the composer ----------------------------------------------------------------
    def solver(self, problem: Product) -> tuple[Task, Any]:
        task = MultiplyTask(a=problem.a, b=problem.b)
        return task, task.initial_state()

    def composer(self, problem: Product, split: Any, left: str, right: str) -> tuple[Task, Any]:
        return SumStep(), sum_start(Number(left, split), Number(right, 0))

    def result(self, task: Task, state: Any) -> str:
        if isinstance(task, MultiplyTask):
            return str(product_of(state))
        return str(number_of(state).value)

    def rule(self, problem: Product, result: str) -> str | None:
        if not result.isdigit() or len(_digits(result)) > len(problem.a) + len(problem.b):
            return f"the result has {len(result)} characters; a product of these factors has at most " \
                   f"{len(problem.a) + len(problem.b)} digits"
        value = int(result)
        for modulus, name in ((9, "nines"), (11, "elevens")):
            want = int(problem.a) % modulus * (int(problem.b) % modulus) % modulus
            if value % modulus != want:
                return f"casting out {name}: the result is {value % modulus} mod {modulus}, the factors' product {want}"
        return None

    def answer(self, problem: Product, result: Any) -> str:
        return str(int(result))

    def truth(self, problem: Product) -> str:
        return str(int(problem.a) * int(problem.b))


class MultiplyDecompose(DecomposerTask):
    """The multiplication decomposer as a task of its own, so that ``maker train`` can give it a microagent:
    ``maker train maker_tasks.multiply_problems:MultiplyDecompose --out models/adapters/multiply-decompose``."""

    name = "multiply-decompose"

    def __init__(self, **params: Any) -> None:
        super().__init__(MultiplyProblems())

    def initial_state(self) -> Decomposing:
        return Decomposing(Product("46048", "42098"), 0)

    def run_defaults(self) -> dict[str, object]:
        return {"max_tokens": 12}


# --- the paper's form, for general LLMs -------------------------------------------------------------
_VOTE = re.compile(r"^\s*vote:\s*(.*?)\s*$", re.I | re.M)
_PARTS = re.compile(r"P1\s*=\s*\[(.*?)\]\s*,\s*P2\s*=\s*\[(.*?)\]\s*,\s*F\s*=\s*\[(.*?)\]\s*$")
_FACTORS = re.compile(r"^\s*(\d+)\s*[×xX*]\s*(\d+)\s*$")
_SHIFT_ADD = re.compile(r"^\s*P1\s*\*\s*10\s*\^\s*(\d+)\s*\+\s*P2\s*$")
_NUMBER = re.compile(r"^\s*(\d+)\s*$")


def last_vote(reply: str) -> str:
    """The text after the reply's last ``vote:`` line; a reply without one is malformed (its final is missing)."""
    found = _VOTE.findall(reply)
    if not found:
        raise RedFlag("malformed final: no 'vote:' line")
    return found[-1]


class Arithmetic(NamedTuple):
    """One calculation a general LLM answers in a reply: x × y, or x · 10^m + y."""

    op: str  # "product" or "shift-add"
    x: str
    y: str
    m: int = 0
    answer: str | None = None


class ArithmeticReply(Task):
    """The solver's or composer's whole calculation in one voted reply, its number on the last ``vote:`` line."""

    name = "arithmetic"
    agent = "arithmetic"

    def prompt(self, state: Arithmetic) -> str:
        what = f"{state.x} × {state.y}" if state.op == "product" else f"{state.x} * 10^{state.m} + {state.y}"
        return (f"Compute {what} exactly. You may work it out step by step; end with one line: vote: <the number>, "
                "digits only.")

    def parse(self, state: Arithmetic, reply: str) -> str:
        found = _NUMBER.match(last_vote(reply))
        if found is None:
            raise RedFlag("malformed final: the vote is not a whole number")
        return _digits(found.group(1))

    def apply(self, state: Arithmetic, candidate: str) -> Arithmetic:
        return state._replace(answer=candidate)

    def is_done(self, state: Arithmetic) -> bool:
        return state.answer is not None

    def total_steps(self) -> int:
        return 1

    def oracle(self, state: Arithmetic) -> str:
        value = int(state.x) * int(state.y) if state.op == "product" else int(state.x) * 10**state.m + int(state.y)
        return str(value)

    def format_reply(self, state: Arithmetic, candidate: str) -> str:
        return f"vote: {candidate}"

    def plausible_mistake(self, state: Arithmetic, candidate: str, rng: random.Random) -> str:
        return str(int(candidate) + rng.choice([-10, -1, 1, 9, 10, 100]) if int(candidate) > 100 else int(candidate) + 1)


class MultiplyPaperProblems(MultiplyProblems):
    """Multiplication in the paper's own form, for general LLMs (``--family multiply-paper``): the decomposer
    reads the whole statement and replies ``vote: P1=[A × B1], P2=[A × B2], F=[P1 * 10^M + P2]``, or
    ``P1=[A × B], P2=[None], F=[None]`` for atomic; the solver and the composer each answer in one reply."""

    name = "multiply-paper"
    decomposer_agent = "decomposer"

    def split_prompt(self, problem: Product) -> str:
        a, b = problem
        return (f"Decompose the problem {a} × {b} into two smaller, independent multiplications.\n"
                f"Split the second number {b}: P1 = {a} × (its leading digits), P2 = {a} × (its last M digits), and "
                "the answer is F = P1 * 10^M + P2. If the problem is small enough to compute at once, it is atomic.\n"
                f"End with one line: vote: P1=[{a} × ...], P2=[{a} × ...], F=[P1 * 10^M + P2]\n"
                f"or, for an atomic problem: vote: P1=[{a} × {b}], P2=[None], F=[None]")

    def parse_split(self, problem: Product, reply: str) -> Any:
        found = _PARTS.search(last_vote(reply))
        if found is None:
            raise RedFlag("malformed final: the vote is not P1=[...], P2=[...], F=[...]")
        first, second, compose = (part.strip() for part in found.groups())
        if second == "None" and compose == "None":
            if (read := _FACTORS.match(first)) is None or Product(*map(_digits, read.groups())) != problem:
                raise RedFlag("an atomic reply must restate the problem as P1", RedFlagReason.INVALID)
            return ATOMIC
        if any(name in first + second for name in ("P1", "P2")):
            raise RedFlag("non-independent sub-problems: P1 and P2 refer to each other", RedFlagReason.INVALID)
        shift = _SHIFT_ADD.match(compose)
        if shift is None:
            raise RedFlag(f"ambiguous composition: F=[{compose[:40]}] is not P1 * 10^M + P2", RedFlagReason.INVALID)
        split = int(shift.group(1))
        parts = [_FACTORS.match(text) for text in (first, second)]
        try:
            expected = self.parts(problem, split)
        except ValueError as exc:
            raise RedFlag(str(exc), RedFlagReason.INVALID) from None
        if None in parts or [Product(*map(_digits, p.groups())) for p in parts] != list(expected):  # type: ignore[union-attr]
            raise RedFlag(f"non-independent sub-problems: P1 and P2 are not the problem split at M = {split}",
                          RedFlagReason.INVALID)
        return split

    def format_split(self, problem: Product, split: Any) -> str:
        if split == ATOMIC:
            return f"vote: P1=[{problem.a} × {problem.b}], P2=[None], F=[None]"
        a, b = problem  # sliced as written, so that a wrong split (a simulated mistake) reads as one
        return f"vote: P1=[{a} × {b[:-split]}], P2=[{a} × {b[-split:]}], F=[P1 * 10^{split} + P2]"

    def oracle_split(self, problem: Product) -> Any:
        return ATOMIC if len(problem.b) <= 2 else len(problem.b) // 2

    def solver(self, problem: Product) -> tuple[Task, Any]:
        return ArithmeticReply(), Arithmetic("product", problem.a, problem.b)

    def composer(self, problem: Product, split: Any, left: str, right: str) -> tuple[Task, Any]:
        return ArithmeticReply(), Arithmetic("shift-add", left, right, split)

    def result(self, task: Task, state: Any) -> str:
        return state.answer
