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
from typing import Any, ClassVar, NamedTuple

from maker.errors import RedFlag, RedFlagReason
from maker.task import Task

ATOMIC = "atomic"  # the decomposer's reply for a problem the solver takes whole
ROLES = ("decompose", "solve", "compose")


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
