"""Problem families: problems stated in words, which agents decompose (``maker solve``, ``maker.solving``).

A family reads a statement into a problem (``parse``) and gives three roles their steps:

- the **decomposer** decides, in one voted step, whether a problem is atomic or how it splits into two
  smaller, independent parts and a composition (``DecomposerTask`` asks through the family's split hooks);
- the **solver** solves an atomic problem as a chain of voted microsteps (``solver``);
- the **composer** applies the composition to the two solved parts, also as a chain (``composer``).

A decomposition is red-flagged when it is malformed, when a part is not smaller than the problem, or when
the family cannot compose it (``DecomposerTask.parse``): those are rules of the family, never the oracle.
``rule`` is a check derived from the problem itself (casting out nines for a product), applied to every
node's result. The oracle (``oracle_split``, ``truth``) feeds only the simulated backend, training and the
count of errors afterwards.

Sub-problems may name parts of data the engine holds (the family's problem values), so that no prompt grows
with the problem and small models' short contexts suffice.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from maker.errors import Flagged, RedFlag, RedFlagReason
from maker.task import Task

ATOMIC = "atomic"  # the decomposer's reply for a problem the solver takes whole
ROLES = ("decompose", "solve", "compose")
# The MAKER paper's failure classes that a red flag's detail can name (a family's parse starts its detail so).
FLAGGED_CLASSES = ("malformed final", "non-independent sub-problems", "ambiguous composition")
DISCRIMINATE = "discriminate"  # the discriminator's role, beside ROLES where a run asks for the paper's rule
_VOTE_LINE = re.compile(r"vote:\s*\[?\s*(\d{1,3})\s*\]?\s*$")


class Decomposing(NamedTuple):
    """The decomposer's one step: the problem, its depth in the tree, and the split once decided."""

    problem: Any
    depth: int
    split: Any = None  # ATOMIC or the family's split, once decided


class ProblemFamily:
    """Base class of a problem family. Subclass it, set ``name``, and fill in the methods.

    A problem is any value the family chooses (hashable is best); a split is a JSON value (an int, a
    string, a tuple of them) that is its canonical form: votes count equal splits as one answer.
    """

    #: the name used on the command line and in journals
    name: ClassVar[str] = "problems"
    #: the catalog agent (``maker.agents``) that decomposes; the solver's and composer's tasks name their own
    decomposer_agent: ClassVar[str | None] = None
    #: a statement of the family, for ``maker check-family`` (and docs); None: the user gives one
    example: ClassVar[str | None] = None
    #: the catalog agent that judges candidates under the discriminator rule (``maker solve --discriminate``);
    #: None: the backend's default model
    discriminator_agent: ClassVar[str | None] = None
    #: the model folders the family ships: agent name -> folder (None: any other agent), as ``Task.default_model``
    models: ClassVar[dict[str | None, Any]] = {}

    # --- statements -------------------------------------------------------------------------------
    def parse(self, question: str) -> Any:
        """The problem a statement asks; raise ``maker.TaskError`` saying what is wrong and where."""
        raise NotImplementedError

    def describe(self, problem: Any) -> str:
        """A short text for the tree the summary shows."""
        return str(problem)

    # --- the decomposer ---------------------------------------------------------------------------
    def split_prompt(self, problem: Any) -> str:
        raise NotImplementedError

    def parse_split(self, problem: Any, reply: str) -> Any:
        """ATOMIC or the split a reply names, in canonical form; raise ``RedFlag`` for a malformed reply."""
        raise NotImplementedError

    def format_split(self, problem: Any, split: Any) -> str:
        """The reply that says ``split`` (the simulated backend and training write it)."""
        raise NotImplementedError

    def parts(self, problem: Any, split: Any) -> tuple[Any, Any]:
        """The two sub-problems of a split; raise ``ValueError`` for a split the family cannot compose."""
        raise NotImplementedError

    def size(self, problem: Any) -> int:
        """A measure that every part of a split must be below (a split that does not shrink loops)."""
        raise NotImplementedError

    def splittable(self, problem: Any) -> bool:
        """False for a problem no split can shrink (the rules would red-flag every split): the decomposer is not
        asked, and the solver takes it whole."""
        return self.size(problem) > 1

    def oracle_split(self, problem: Any) -> Any:
        """The split a good decomposer chooses: for the simulated backend and training only."""
        raise NotImplementedError(f"family {self.name!r} has no oracle split")

    def mistaken_split(self, problem: Any, split: Any, rng: random.Random) -> Any:
        """A plausible wrong split (the simulated backend's errors)."""
        return ATOMIC if split != ATOMIC else split

    # --- the solver and the composer ----------------------------------------------------------------
    def solver(self, problem: Any) -> tuple[Task, Any]:
        """The task whose chain solves an atomic problem, and its start state."""
        raise NotImplementedError

    def composer(self, problem: Any, split: Any, left: Any, right: Any) -> tuple[Task, Any]:
        """The task whose chain composes the solved parts ``left`` and ``right``, and its start state."""
        raise NotImplementedError

    def result(self, task: Task, state: Any) -> Any:
        """The result a finished solver or composer chain holds (a JSON value: the journal keeps it)."""
        raise NotImplementedError

    def rule(self, problem: Any, result: Any) -> str | None:
        """What is wrong with ``result`` by a check derived from the problem alone (never the answer), or None."""
        return None

    def answer(self, problem: Any, result: Any) -> str:
        """The final answer's text."""
        return str(result)

    def truth(self, problem: Any) -> Any:
        """The oracle's result of a problem: for counting errors afterwards only. None: unknown."""
        return None

    # --- the discriminator (the paper's rule, where exact match cannot serve) -------------------------
    def discriminator_prompt(self, question: str, candidates: Sequence[str]) -> str:
        """The question to the discriminator: the request the candidates replied to, then the candidates, numbered
        from 1. Its reply must end with ``vote: N``."""
        listed = "\n".join(f"{number}. {text}" for number, text in enumerate(candidates, 1))
        return (f"{question}\n\nCandidate replies to the request above:\n{listed}\n\nCheck each candidate and choose "
                "the one that is right. End with one line: vote: <the number of the right candidate>")


class DecomposerTask(Task):
    """The decomposer role as a task of one step: its state is ``Decomposing``, its candidate a split."""

    name = "decompose"

    def __init__(self, family: ProblemFamily) -> None:
        super().__init__()
        self.family = family
        self.agent = family.decomposer_agent

    def prompt(self, state: Decomposing) -> str:
        return self.family.split_prompt(state.problem)

    def parse(self, state: Decomposing, reply: str) -> Any:
        family, problem = self.family, state.problem
        split = family.parse_split(problem, reply)
        if split == ATOMIC:
            return split
        try:
            parts = family.parts(problem, split)
        except ValueError as exc:
            raise RedFlag(f"the composer cannot take this split: {exc}", RedFlagReason.INVALID) from None
        whole = family.size(problem)
        for name, part in zip(("P1", "P2"), parts, strict=True):
            if family.size(part) >= whole:
                raise RedFlag(f"{name} is not smaller than the problem ({family.size(part)} >= {whole})",
                              RedFlagReason.INVALID)
        return split

    def apply(self, state: Decomposing, candidate: Any) -> Decomposing:
        return state._replace(split=candidate)

    def is_done(self, state: Decomposing) -> bool:
        return state.split is not None

    def total_steps(self) -> int:
        return 1

    def oracle(self, state: Decomposing) -> Any:
        return self.family.oracle_split(state.problem)

    @property
    def has_oracle(self) -> bool:
        return type(self.family).oracle_split is not ProblemFamily.oracle_split

    def format_reply(self, state: Decomposing, candidate: Any) -> str:
        return self.family.format_split(state.problem, candidate)

    def plausible_mistake(self, state: Decomposing, candidate: Any, rng: random.Random) -> Any:
        return self.family.mistaken_split(state.problem, candidate, rng)

    def training_states(self, rng: random.Random, count: int) -> list[Decomposing]:
        problems = getattr(self.family, "training_problems", None)
        if problems is None:
            raise NotImplementedError(f"family {self.family.name!r} has no training_problems(rng, count)")
        return [Decomposing(problem, 0) for problem in problems(rng, count)]


def flag_class(flagged: Flagged) -> str:
    """The paper's failure class a red flag's detail names, else its reason."""
    detail = flagged.detail or ""
    return next((name for name in FLAGGED_CLASSES if detail.startswith(name)), flagged.reason.value)


class Judging(NamedTuple):
    """The discriminator's one step: the request other replies answered, the distinct candidates among them (as
    shown, and in canonical form, in the same order), the oracle's answer (for the simulated backend and counting
    afterwards only; None: unknown) and the choice once decided."""

    question: str
    texts: tuple[str, ...]
    candidates: tuple[Any, ...]
    truth: Any = None
    chosen: Any = None


class DiscriminatorTask(Task):
    """The MAKER paper's discriminator as a task of one step: which of another role's candidate replies (splits
    from the decomposer, answers from a one-reply solver or composer) is right. Its reply ends with ``vote: N``;
    its candidate is the N-th candidate's canonical form, so its votes race as any step's do. For replies that
    exact match cannot pool (free-text sub-problems from a general LLM), the judgement is the discriminator's."""

    name = "discriminate"

    def __init__(self, family: ProblemFamily) -> None:
        super().__init__()
        self.family = family
        self.agent = family.discriminator_agent

    def prompt(self, state: Judging) -> str:
        return self.family.discriminator_prompt(state.question, state.texts)

    def parse(self, state: Judging, reply: str) -> Any:
        lines = [line for line in reply.strip().splitlines() if line.strip()]
        found = _VOTE_LINE.search(lines[-1]) if lines else None
        if found is None:
            raise RedFlag("malformed final: no 'vote: N' on the last line")
        number = int(found.group(1))
        if not 1 <= number <= len(state.candidates):
            raise RedFlag(f"vote {number} names no candidate (1 to {len(state.candidates)})", RedFlagReason.INVALID)
        return state.candidates[number - 1]

    def apply(self, state: Judging, candidate: Any) -> Judging:
        return state._replace(chosen=candidate)

    def is_done(self, state: Judging) -> bool:
        return state.chosen is not None

    def total_steps(self) -> int:
        return 1

    def oracle(self, state: Judging) -> Any:
        # the oracle's answer where a candidate holds it; else no candidate is right, and the first stands in
        return state.truth if state.truth in state.candidates else state.candidates[0]

    def format_reply(self, state: Judging, candidate: Any) -> str:
        return f"vote: {state.candidates.index(candidate) + 1}"

    def plausible_mistake(self, state: Judging, candidate: Any, rng: random.Random) -> Any:
        others = [other for other in state.candidates if other != candidate]
        return rng.choice(others) if others else candidate
