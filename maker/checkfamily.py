"""Self-test of a problem family before any model is involved (``maker check-family``), as ``maker check-task``
is for a task.

``check_family`` reads a statement, then walks the tree the family's oracle would choose: at every node the
oracle's split must survive its own reply (``format_split`` then the decomposer's parse, with its rules), every
part must be smaller, and each solver and composer chain is run by its task's oracle, checking each step's reply
round trip. Each node's result must survive the journal (JSON), pass the family's rule and equal its truth;
the answer must read the same as the truth's. The oracle serves only to test the family here.
"""

from __future__ import annotations

import json
from typing import Any

from maker.checktask import CheckReport, Finding
from maker.errors import RedFlag, TaskError
from maker.problems import ATOMIC, DecomposerTask, Decomposing, ProblemFamily
from maker.task import Task

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
        else:
            reply = family.format_split(problem, split)
            try:
                read = self.decomposer.parse(Decomposing(problem, 0), reply)
            except RedFlag as flag:
                raise _Broken(f"{where}: the oracle's split {split!r} ({reply!r}) is red-flagged: {flag}") from None
            if read != split:
                raise _Broken(f"{where}: the oracle's split {split!r} reads back from {reply!r} as {read!r}")
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
        task, state = work
        for step in range(CHAIN_CAP):
            if task.is_done(state):
                return self.family.result(task, state)
            candidate = task.oracle(state)
            reply = task.format_reply(state, candidate)
            try:
                read = task.parse(state, reply)
            except RedFlag as flag:
                raise _Broken(f"{where}, step {step}: the oracle's reply {reply!r} is red-flagged: {flag}") from None
            if read != candidate:
                raise _Broken(f"{where}, step {step}: the oracle's reply {reply!r} reads back as {read!r}, not {candidate!r}")
            state = task.apply(state, candidate)
            self.steps += 1
        raise _Broken(f"{where}: the chain did not finish in {CHAIN_CAP:,} steps (is_done never came true)")
