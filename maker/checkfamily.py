"""Self-test of a problem family before any model is involved (``maker check-family``), as ``maker check-task``
is for a task.

``check_family`` reads a statement, then walks the tree the family's oracle would choose: at every node the
oracle's split must survive its own reply (``format_split`` then the decomposer's parse, with its rules), every
part must be smaller, and each solver and composer chain is run by its task's oracle, checking each step's reply
round trip (``maker check-task``'s own check and oracle walk). Each node's result must survive the journal (JSON), pass the family's rule and equal its truth;
the answer must read the same as the truth's. The oracle serves only to test the family here.
"""

from __future__ import annotations

import json
from typing import Any

from maker.checktask import CheckReport, Finding, reply_problem
from maker.errors import TaskError
from maker.problems import ATOMIC, DecomposerTask, Decomposing, ProblemFamily
from maker.task import OracleWalk, Task, WalkError

CHAIN_CAP = 1_000_000  # oracle steps one chain may take before the walk calls it endless


class _Broken(Exception):
    """What the walk found wrong, and where."""


def check_family(family: ProblemFamily, question: str) -> CheckReport:
    """Every finding for ``family`` on the statement ``question``."""
    try:
        problem = family.parse(question)
    except TaskError as exc:
        return CheckReport(family.name, 0, [Finding("statement", "fail", str(exc), "fix parse(), or the statement")])
    findings = [Finding("statement", "pass", f"reads as {family.describe(problem)}")]
    walker = _Walk(family)
    try:
        result = walker.node(problem, "root")
        findings.append(Finding("oracle tree", "pass", f"{walker.nodes} nodes, {walker.steps:,} chain steps: every split "
                                "read back and shrank, every chain finished, every result passed the rule and its truth"))
    except _Broken as exc:
        return CheckReport(family.name, walker.steps, [*findings, Finding("oracle tree", "fail", str(exc))])
    truth = family.truth(problem)
    if truth is None:
        findings.append(Finding("answer", "skip", "the family has no truth() to compare with"))
    elif family.answer(problem, result) != family.answer(problem, truth):
        findings.append(Finding("answer", "fail", f"answer {family.answer(problem, result)[:80]!r} differs from the "
                                f"truth's {family.answer(problem, truth)[:80]!r}", "make answer() read results and truths alike"))
    else:
        findings.append(Finding("answer", "pass", f"{family.answer(problem, result)[:80]}"))
    return CheckReport(family.name, walker.steps, findings)


class _Walk:
    def __init__(self, family: ProblemFamily) -> None:
        self.family, self.decomposer = family, DecomposerTask(family)
        self.nodes = self.steps = 0

    def node(self, problem: Any, where: str) -> Any:
        family = self.family
        self.nodes += 1
        split = family.oracle_split(problem) if family.splittable(problem) else ATOMIC
        if split == ATOMIC:
            result = self.chain(family.solver(problem), f"{where}: the solver")
        else:  # the decomposer's reply is format_split's, read back by its parse with the split rules
            if (problem_with_reply := reply_problem(self.decomposer, Decomposing(problem, 0), split)) is not None:
                raise _Broken(f"{where}: the oracle's split {split!r}: {problem_with_reply}")
            parts = family.parts(problem, split)
            left, right = (self.node(part, f"{where}.{n}") for n, part in enumerate(parts, 1))
            result = self.chain(family.composer(problem, split, left, right), f"{where}: the composer")
        if json.loads(json.dumps(result)) != result:
            raise _Broken(f"{where}: the result {result!r} does not survive the journal (JSON); return lists, strings, ints")
        if (broken := family.rule(problem, result)) is not None:
            raise _Broken(f"{where}: the oracle's result breaks the family's rule: {broken}")
        truth = family.truth(problem)
        if truth is not None and result != truth:
            raise _Broken(f"{where}: the oracle's result {str(result)[:60]} is not the truth {str(truth)[:60]}")
        return result

    def chain(self, work: tuple[Task, Any], where: str) -> Any:
        """A solver's or composer's chain walked by its task's oracle (``OracleWalk`` from the chain's start),
        each reply read back as ``maker check-task`` reads it."""
        task, start = work
        walk = OracleWalk(task, CHAIN_CAP, start=start)
        try:
            for step, state, candidate in walk:
                if (problem := reply_problem(task, state, candidate)) is not None:
                    raise _Broken(f"{where}, step {step}: {problem}")
        except WalkError as exc:
            raise _Broken(f"{where}: {exc}") from None
        if not walk.done:
            raise _Broken(f"{where}: the chain did not finish in {CHAIN_CAP:,} steps (is_done never came true)")
        self.steps += walk.steps
        return self.family.result(task, walk.state)
