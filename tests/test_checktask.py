"""check_task: a task's self-test finds each kind of mistake, says where (step and state) and how to fix it."""

from typing import NamedTuple

import pytest

from maker import Plan, RedFlag, RedFlagReason, Subtask, Task, load_task
from maker.checktask import CheckReport, Finding, check_task
from maker.task import JOURNAL_HINT
from tests.toy import Countdown


def finding(report: CheckReport, name: str) -> Finding:
    (found,) = [f for f in report.findings if f.name == name]
    return found


def failed(report: CheckReport) -> list[str]:
    return [f.name for f in report.findings if f.outcome == "fail"]


@pytest.mark.parametrize("task", [Countdown(start=3), load_task("hanoi", disks=3)], ids=["countdown", "hanoi"])
def test_a_good_task_passes_every_check(task):
    report = check_task(task)
    assert report.ok and not failed(report), report.to_text()
    for name in ("walk", "prompt", "candidate", "journal round trip", "reply round trip", "oracle vs check", "is_done"):
        assert finding(report, name).outcome == "pass", report.to_text()
    assert report.walked == task.total_steps()
    assert finding(report, "is_done").message == f"is_done after {task.total_steps()} steps, as total_steps() says"


def test_hanoi_plan_is_checked_and_countdown_has_none():
    assert finding(check_task(load_task("hanoi", disks=3), depth=1), "plan").message == "depth 1: 2 subtasks, 7 steps"
    plan = finding(check_task(Countdown(start=3)), "plan")
    assert plan.outcome == "skip" and "depth 0 only" in plan.message


class WordyReply(Countdown):
    def format_reply(self, state, candidate):
        return f"answer: {candidate}"  # parse wants a bare number


class OffByOneReply(Countdown):
    def format_reply(self, state, candidate):
        return str(candidate + 1)


def test_format_reply_that_parse_red_flags():
    report = check_task(WordyReply(start=3))
    reply = finding(report, "reply round trip")
    assert reply.outcome == "fail" and not report.ok
    assert reply.message.startswith("step 0 (state 3): parse red-flags")
    assert "not a number: 'answer: 2'" in reply.message and "[3 of 3 steps]" in reply.message
    assert "format_reply" in reply.fix and failed(report) == ["reply round trip"]


def test_format_reply_that_parse_reads_as_another_candidate():
    reply = finding(check_task(OffByOneReply(start=3)), "reply round trip")
    assert reply.outcome == "fail"
    assert reply.message.startswith("step 0 (state 3): parse reads 3 from the reply '3', not 2")


class ListCandidate(Countdown):
    def oracle(self, state):
        return [state - 1]

    def apply(self, state, candidate):
        return candidate[0]

    def check(self, state, candidate):
        pass


def test_unhashable_candidate():
    report = check_task(ListCandidate(start=2))
    candidate = finding(report, "candidate")
    assert candidate.outcome == "fail"
    assert candidate.message.startswith("step 0 (state 2): the oracle's candidate [1] is unhashable")
    assert "[2 of 2 steps]" in candidate.message and "tuples" in candidate.fix


class SetCandidate(Countdown):
    def oracle(self, state):
        return frozenset({state - 1})

    def parse(self, state, reply):
        return frozenset({super().parse(state, reply)})

    def check(self, state, candidate):
        super().check(state, min(candidate))

    def apply(self, state, candidate):
        return min(candidate)

    def format_reply(self, state, candidate):
        return str(min(candidate))


class Next(NamedTuple):
    value: int


class NamedTupleCandidate(Countdown):
    def oracle(self, state):
        return Next(state - 1)

    def parse(self, state, reply):
        return Next(super().parse(state, reply))

    def check(self, state, candidate):
        super().check(state, candidate.value)

    def apply(self, state, candidate):
        return candidate.value

    def format_reply(self, state, candidate):
        return str(candidate.value)


@pytest.mark.parametrize("task_cls, words", [
    (SetCandidate, ["encoding it raised TypeError", "frozenset"]),
    (NamedTupleCandidate, ["comes back as (2,) (tuple), not Next(value=2) (Next)"]),
])
def test_candidate_the_journal_cannot_hold(task_cls, words):
    report = check_task(task_cls(start=3))
    journal = finding(report, "journal round trip")
    assert failed(report) == ["journal round trip"], report.to_text()
    assert journal.message.startswith("step 0 (state 3): ") and "[3 of 3 steps]" in journal.message
    assert all(word in journal.message for word in words), journal.message
    assert journal.fix == JOURNAL_HINT


class NoOneAllowed(Countdown):
    def check(self, state, candidate):
        if candidate == 1:
            raise RedFlag("1 is not allowed", RedFlagReason.INVALID)


def test_oracle_that_breaks_the_check():
    report = check_task(NoOneAllowed(start=3))
    checked = finding(report, "oracle vs check")
    assert failed(report) == ["oracle vs check"]
    assert checked.message == "step 1 (state 2): the oracle's answer 1 breaks check: 1 is not allowed [1 of 3 steps]"
    assert "the oracle or the check is wrong" in checked.fix


class NeverDone(Countdown):
    def is_done(self, state):
        return state == -10


class DoneEarly(Countdown):
    def total_steps(self):
        return self.params.start + 2


def test_is_done_never_reached_within_total_steps():
    report = check_task(NeverDone(start=3))
    assert failed(report) == ["is_done"] and report.walked == 3  # the walk stops at total_steps()
    assert finding(report, "is_done").message == "is_done never reached within total_steps() = 3 (state then: 0)"
    assert finding(report, "walk").message == "3 steps with the oracle, then stopped at total_steps() = 3"


def test_is_done_earlier_than_total_steps():
    is_done = finding(check_task(DoneEarly(start=3)), "is_done")
    assert is_done.outcome == "fail" and is_done.message == "is_done after 3 steps, but total_steps() says 5"


def test_is_done_beyond_the_step_budget_is_skipped():
    report = check_task(Countdown(start=50), steps=10)
    assert report.ok and report.walked == 10
    assert finding(report, "is_done").message == "walked 10 of 50 steps; raise --steps to check is_done"
    assert finding(report, "walk").message == "10 steps with the oracle, then stopped at the limit of 10 steps"


def test_is_done_without_total_steps_names_the_default_cap():
    class Undeclared(Countdown):
        def total_steps(self):
            return None

    is_done = finding(check_task(Undeclared(start=3)), "is_done")
    assert is_done.outcome == "pass" and "no total_steps() is declared" in is_done.message
    assert "DEFAULT_STEP_CAP" in is_done.message


def test_total_steps_that_is_not_a_count():
    class Negative(Countdown):
        def total_steps(self):
            return -1

    is_done = finding(check_task(Negative(start=3)), "is_done")
    assert is_done.outcome == "fail" and "total_steps() returned -1" in is_done.message


class CyclicPlan(Countdown):
    def plan(self, depth):
        plan = Plan()
        plan.add(Subtask("a", start_from=lambda results: results["b"], steps=1, after=("b",)))
        plan.add(Subtask("b", start_from=lambda results: results["a"], steps=2, after=("a",)))
        return plan


class ShortPlan(Countdown):
    def plan(self, depth):
        plan = Plan()
        plan.add(Subtask("main", start=self.initial_state(), steps=2))
        return plan


def test_plan_with_a_dependency_cycle():
    report = check_task(CyclicPlan(start=3))
    plan = finding(report, "plan")
    assert failed(report) == ["plan"]
    assert plan.message.startswith("depth 1: plan has a dependency cycle: ") and "a -> b" in plan.message
    assert "without cycles" in plan.fix


def test_plan_whose_steps_differ_from_total_steps():
    plan = finding(check_task(ShortPlan(start=3)), "plan")
    assert plan.outcome == "fail"
    assert plan.message == "depth 1: the plan's 1 subtasks take 2 steps, but total_steps() says 3"


class NoOracle(Countdown):
    oracle = Task.oracle


def test_task_without_oracle_skips_the_round_trips_but_checks_the_first_prompt():
    report = check_task(NoOracle(start=3))
    assert report.ok and report.walked == 0
    assert finding(report, "walk").outcome == "skip" and "correct answer of each step" in finding(report, "walk").message
    for name in ("candidate", "journal round trip", "reply round trip", "oracle vs check", "is_done"):
        assert finding(report, name).outcome == "skip", name
    assert finding(report, "prompt").message == "1 step: every prompt is a non-empty str"


def test_task_without_oracle_still_reports_a_blank_first_prompt():
    class Blank(NoOracle):
        def prompt(self, state):
            return "  "

    prompt = finding(check_task(Blank(start=3)), "prompt")
    assert prompt.outcome == "fail" and prompt.message.startswith("step 0 (state 3): prompt returned the blank string")


def test_without_format_reply_the_reply_round_trip_is_skipped():
    class NoFormat(Countdown):
        format_reply = Task.format_reply

    reply = finding(check_task(NoFormat(start=3)), "reply round trip")
    assert reply.outcome == "skip" and "simulated backend" in reply.message


def test_task_code_that_raises_stops_the_walk_but_not_the_other_checks():
    class Crashes(WordyReply):
        def oracle(self, state):
            if state == 1:
                raise ZeroDivisionError("boom")
            return state - 1

    report = check_task(Crashes(start=3))
    walk = finding(report, "walk")
    assert walk.message == "task.oracle raised ZeroDivisionError: boom at step 2 (state 1)"
    assert "fix task.oracle" in walk.fix and report.walked == 2
    assert finding(report, "reply round trip").message.endswith("[2 of 2 steps]")  # still reported
    assert finding(report, "is_done").message == "the walk stopped at step 2"
    assert failed(report) == ["walk", "reply round trip"]


def test_initial_state_that_raises():
    class NoStart(Countdown):
        def initial_state(self):
            raise KeyError("start")

    report = check_task(NoStart(start=3))
    assert finding(report, "walk").message == "task.initial_state raised KeyError: 'start' at step 0"
    assert finding(report, "prompt").outcome == "skip"


def test_text_and_json():
    report = check_task(WordyReply(start=3))
    lines = report.to_text().splitlines()
    assert lines[0].startswith("  PASS  walk ")
    assert any(line.startswith("  FAIL  reply round trip    step 0 (state 3)") for line in lines)  # names aligned
    assert any(line.startswith("        fix: format_reply must") for line in lines)
    assert lines[-1] == "6 passed, 1 failed, 1 skipped"
    data = report.to_json()
    assert data["ok"] is False and data["walked"] == 3 and data["fail"] == 1 and data["task"] == "countdown"
    assert {"name": "plan", "outcome": "skip", "message": "the task has no plan(depth) method: depth 0 only",
            "fix": None} in data["findings"]
