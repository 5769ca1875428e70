"""Self-test of a task before any model is involved (``maker check-task``), like pytest's collection errors.

``check_task`` walks the oracle's trajectory from the initial state and checks, at every step, what a run
relies on: the prompt, the candidate as a vote key, its journal and reply round trips, the oracle against the
task's check, then ``is_done`` against ``total_steps()`` and the task's plan. Each finding says what is wrong,
where (the first offending step, counted from 0 like a run's steps, with its state, and how many steps had
it) and how to fix it. The oracle serves only to test the task here; voting never sees it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from maker.errors import StepError, short_repr
from maker.planner import plan_for
from maker.redflag import RedFlag, rule_violation
from maker.scheduler import DEFAULT_STEP_CAP
from maker.task import JOURNAL_HINT, OracleWalk, Task, WalkError, journal_round_trip

NO_ORACLE = "the task has no oracle: the walk and the round trips need the correct answer of each step"


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``outcome`` is "pass", "fail" or "skip"; ``fix`` says how to mend it."""

    name: str
    outcome: str
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class CheckReport:
    """Every check's finding for one task; ``walked``: steps taken with the oracle."""

    task: str
    walked: int
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(f.outcome != "fail" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {outcome: sum(f.outcome == outcome for f in self.findings) for outcome in ("pass", "fail", "skip")}

    def to_text(self) -> str:
        width = max((len(f.name) for f in self.findings), default=0)
        lines = [f"  {f.outcome.upper()}  {f.name:<{width}}  {f.message}" + (f"\n        fix: {f.fix}" if f.fix else "")
                 for f in self.findings]
        n = self.counts()
        return "\n".join([*lines, f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"])

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "walked": self.walked, "ok": self.ok, **self.counts(),
                "findings": [asdict(f) for f in self.findings]}


@dataclass(eq=False)
class _Tally:
    """One per-step check over the walk: the steps it saw, how many had a problem and the first, or why it was skipped."""

    name: str
    passed: str  # what a pass means
    fix: str
    seen: int = 0
    bad: int = 0
    first: str = ""
    skipped: Finding | None = None

    def see(self, step: int, state: Any, problem: str | None) -> None:
        self.seen += 1
        if problem is not None:
            self.bad += 1
            self.first = self.first or f"step {step} (state {short_repr(state)}): {problem}"

    def skip(self, message: str, fix: str | None = None) -> None:
        self.skipped = self.skipped or Finding(self.name, "skip", message, fix)

    def finding(self) -> Finding:
        if self.bad:
            return Finding(self.name, "fail", f"{self.first} [{self.bad} of {self.seen} steps]", self.fix)
        if self.skipped or not self.seen:
            return self.skipped or Finding(self.name, "skip", "no step was walked")
        return Finding(self.name, "pass", f"{_steps(self.seen)}: {self.passed}")


def check_task(task: Task, *, steps: int = 1000, depth: int = 1) -> CheckReport:
    """Walk up to ``steps`` steps of the oracle's trajectory and run every check on it (none stops the others)."""
    declared, total_problem = _declared_total(task)
    prompt = _Tally("prompt", "every prompt is a non-empty str", "prompt(state) must return the step's question as a non-empty str")
    hashable = _Tally("candidate", "every candidate is hashable",
                      "return a hashable candidate (it is the vote key): tuples, not lists, sets or dicts")
    journal = _Tally("journal round trip", "every candidate comes back from the journal's JSON as itself", JOURNAL_HINT)
    reply = _Tally("reply round trip", "parse reads format_reply's reply back as the oracle's candidate",
                   "format_reply must write the reply that parse reads back as the same candidate")
    checked = _Tally("oracle vs check", "the oracle's answers pass check",
                     "the oracle or the check is wrong: the correct answer must pass check")
    for tally in (hashable, journal, reply, checked) if not task.has_oracle else ():
        tally.skip(NO_ORACLE)
    if not task.has_check:
        checked.skip("the task has no check")
    # A declared total bounds the walk: is_done must come exactly there, and walking on only costs time.
    limit = steps if declared is None else min(steps, declared)
    # Without an oracle only the initial state can be seen: a walk of no steps.
    walked = OracleWalk(task, limit if task.has_oracle else 0)
    try:
        for step, state, candidate in walked:
            prompt.see(step, state, _prompt_problem(task, state))
            hashable.see(step, state, _hash_problem(candidate))
            journal.see(step, state, journal_round_trip(task, candidate))
            if not reply.skipped:
                try:
                    reply.see(step, state, reply_problem(task, state, candidate))
                except NotImplementedError:  # from format_reply: optional, but a run with --backend sim needs it
                    reply.skip("the task has no format_reply, which the simulated backend and training data need",
                               "define format_reply(state, candidate): the reply a perfect model would write")
            if not checked.skipped:
                checked.see(step, state, _check_problem(task, state, candidate))
        if not task.has_oracle and not walked.done:
            prompt.see(0, walked.state, _prompt_problem(task, walked.state))
        end = "reached is_done" if walked.done else (
            f"stopped at total_steps() = {declared}" if limit == declared else f"stopped at the limit of {_steps(steps)}")
        walk = Finding("walk", "pass", f"{_steps(walked.steps)} with the oracle, then {end}")
        if not task.has_oracle:
            walk = Finding("walk", "skip", f"{NO_ORACLE}; only initial_state and the first prompt were checked",
                           "define oracle(state), the correct candidate, to self-test every step")
    except Exception as exc:
        where, cause = (exc.where, exc.__cause__) if isinstance(exc, WalkError) else ("initial_state", exc)
        at = f"at step {walked.steps}" + ("" if where == "initial_state" else f" (state {short_repr(walked.state)})")
        walk = Finding("walk", "fail", f"task.{where} raised {_error(cause)} {at}",
                       f"fix task.{where}, or the oracle if it led to a state {where} cannot handle")
    findings = [walk, *(t.finding() for t in (prompt, hashable, journal, reply, checked)),
                _is_done_finding(declared, total_problem, walked, walk), _plan_finding(task, depth, declared)]
    return CheckReport(task.name, walked.steps if task.has_oracle else 0, findings)


def _is_done_finding(declared: int | None, problem: str | None, walked: OracleWalk, walk: Finding) -> Finding:
    fix = "total_steps() must count the steps of a correct run, and is_done must be true exactly after them"
    done_at = walked.steps if walked.done else None
    if problem:  # total_steps() itself is broken
        return Finding("is_done", "fail", problem, fix)
    if done_at is None and walk.outcome != "pass":
        return Finding("is_done", "skip", NO_ORACLE if walk.outcome == "skip" else f"the walk stopped at step {walked.steps}")
    if declared is None and done_at is None:
        return Finding("is_done", "skip", f"walked {_steps(walked.steps)} without is_done, and no total_steps() is declared; "
                       "raise --steps to check is_done")
    if declared is None:
        return Finding("is_done", "pass", f"is_done after {_steps(done_at)}; no total_steps() is declared, so a run "
                       f"whose is_done never comes true stops at DEFAULT_STEP_CAP = {DEFAULT_STEP_CAP:,} steps")
    if done_at is None and walked.steps < declared:
        return Finding("is_done", "skip", f"walked {walked.steps} of {declared} steps; raise --steps to check is_done")
    if done_at is None:
        return Finding("is_done", "fail", f"is_done never reached within total_steps() = {declared} "
                       f"(state then: {short_repr(walked.state)})", fix)
    if done_at != declared:
        return Finding("is_done", "fail", f"is_done after {_steps(done_at)}, but total_steps() says {declared}", fix)
    return Finding("is_done", "pass", f"is_done after {_steps(done_at)}, as total_steps() says")


def _plan_finding(task: Task, depth: int, declared: int | None) -> Finding:
    if not task.has_plan:
        return Finding("plan", "skip", "the task has no plan(depth) method: depth 0 only")
    try:
        plan = plan_for(task, depth)
        planned = plan.total_steps()
    except Exception as exc:  # plan_for's TaskError: a cycle, an unknown dependency, not a Plan
        return Finding("plan", "fail", f"depth {depth}: {exc}", "plan(depth) must return a maker.Plan whose subtasks "
                       "depend (after=...) only on subtasks of the plan, without cycles")
    if planned is not None and declared is not None and planned != declared:
        return Finding("plan", "fail", f"depth {depth}: the plan's {len(plan.graph)} subtasks take {planned} steps, but "
                       f"total_steps() says {declared}", "the subtasks' steps must add up to total_steps()")
    return Finding("plan", "pass", f"depth {depth}: {len(plan.graph)} subtasks, {planned if planned is not None else 'unknown'} steps")


def _declared_total(task: Task) -> tuple[int | None, str | None]:
    """total_steps() and, when it is unusable, why."""
    try:
        total = task.total_steps()
    except Exception as exc:
        return None, f"total_steps() raised {_error(exc)}"
    if total is None or (isinstance(total, int) and not isinstance(total, bool) and total >= 0):
        return total, None
    return None, f"total_steps() returned {total!r}, not a count of steps (an int >= 0) or None"


def _prompt_problem(task: Task, state: Any) -> str | None:
    try:
        text = task.prompt(state)
    except Exception as exc:
        return f"prompt raised {_error(exc)}"
    if not isinstance(text, str):
        return f"prompt returned a {type(text).__name__}, not a str: {short_repr(text)}"
    return None if text.strip() else f"prompt returned the blank string {text!r}"


def _hash_problem(candidate: Any) -> str | None:
    try:
        hash(candidate)
    except TypeError as exc:
        return f"the oracle's candidate {short_repr(candidate)} is unhashable ({exc}), but votes are counted by it"
    return None


def reply_problem(task: Task, state: Any, candidate: Any) -> str | None:
    """Why parse does not read format_reply's reply back as ``candidate``; NotImplementedError: no format_reply."""
    try:
        text = task.format_reply(state, candidate)
    except NotImplementedError:
        raise
    except Exception as exc:
        return f"format_reply raised {_error(exc)}"
    try:
        back = task.parse(state, text)
    except RedFlag as flag:
        return f"parse red-flags format_reply's reply ({flag.detail or flag.reason.value}); reply: {short_repr(text)}"
    except Exception as exc:
        return f"parse raised {_error(exc)} on format_reply's reply {short_repr(text)}"
    return None if back == candidate else f"parse reads {short_repr(back)} from the reply {short_repr(text)}, not {short_repr(candidate)}"


def _check_problem(task: Task, state: Any, candidate: Any) -> str | None:
    try:
        broken = rule_violation(task, state, candidate)
    except StepError as exc:  # rule_violation: the check raised something other than RedFlag
        return f"check raised {_error(exc.__cause__ or exc)} (it must raise maker.RedFlag to reject a candidate)"
    return None if broken is None else f"the oracle's answer {short_repr(candidate)} breaks check: {broken.detail or broken.reason.value}"


def _steps(n: int) -> str:
    return f"{n} step" + "s" * (n != 1)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

