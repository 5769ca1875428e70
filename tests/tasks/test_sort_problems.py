"""The sorting family: the paper's statements, splits of a list's length, merges one comparison at a time
(simulated backend: replies made up from the oracle)."""

import pytest
from maker_tasks.sort_problems import STATEMENT_PREFIX, CompareStep, Merging, SortProblems, settle

from maker import RedFlag, SimulatedBackend, TaskError, solve
from maker.problems import DecomposerTask
from maker.solving import BY_LIMIT, Question


def paper_lists(count: int, length: int, seed: int = 42) -> list[Question]:
    return SortProblems.paper_set(length, count, seed)


def backend(family, **settings):
    return SimulatedBackend(DecomposerTask(family), **settings)


def test_the_paper_lists_of_50_are_sorted_through_merges_despite_noise():
    family = SortProblems()
    result = solve(family, paper_lists(10, 50), backend(family, error_rate=0.1, seed=2), k=3)
    summary = result.summary(trees=False)
    assert summary["correct"] == 10 and summary["wrong"] == 0
    assert summary["roles"]["compose"]["contested_steps"] > 0  # the noise was outvoted, not absent
    assert summary["roles"]["solve"]["steps"] == 0  # single numbers need no comparison


def test_a_list_solved_whole_is_sorted_by_insertion_with_the_same_comparison_step():
    family = SortProblems()
    result = solve(family, paper_lists(1, 12), backend(family, error_rate=0.0), max_depth=0)
    outcome = result.problems[0]
    assert outcome.correct and outcome.tree.split == BY_LIMIT
    assert 11 <= result.summary()["roles"]["solve"]["steps"] <= 66  # between n - 1 and n(n - 1)/2 comparisons


def test_a_merge_copies_what_needs_no_comparison_and_takes_the_left_on_a_tie():
    step = CompareStep()
    state = settle(Merging((1, 5), (1, 2, 9), ()))
    state = step.apply(state, 1)  # "larger = 1" of 1 and 1: a tie, the left's moves
    assert state.left == (5,) and state.out == (1,)
    state = step.apply(step.apply(state, 5), 5)  # 5 against 1, then 5 against 2: the right's move
    assert not step.is_done(state) and state.out == (1, 1, 2)
    state = step.apply(state, 9)  # then 9 is copied over without a comparison
    assert step.is_done(state) and state.out == (1, 1, 2, 5, 9)
    assert settle(Merging((), (), (), (3, -1, 2))).pending == (2,)


def test_a_comparison_shows_numbers_without_a_minus_sign_and_reads_its_reply_back():
    family = SortProblems()
    task, state = family.composer((-523, -1200, 4), 1, [-523], [-1200, 4])
    assert task.prompt(state).startswith("Which is larger, 9477 or 8800?")  # each number plus 10,000
    assert task.parse(state, "larger = 9477") == -523 and task.format_reply(state, -523) == "larger = 9477"
    assert family.solver((5, 3))[1].offset == 0  # nothing negative: shown as they are


def test_a_reply_must_name_one_of_the_two_numbers():
    step, state = CompareStep(), settle(Merging((7,), (-2,), ()))
    assert step.parse(state, "larger = 7") == 7
    with pytest.raises(RedFlag, match="neither"):
        step.parse(state, "larger = 3")
    with pytest.raises(RedFlag, match="larger = N"):
        step.parse(state, "7 is larger")


def test_statements_and_the_rule():
    family = SortProblems()
    assert family.parse(STATEMENT_PREFIX + "[3, -1, 2]\n") == (3, -1, 2)
    with pytest.raises(TaskError, match="not a sorting statement"):
        family.parse("Sort these: 3, 1")
    with pytest.raises(TaskError, match="whole numbers"):
        family.parse(STATEMENT_PREFIX + "[3, 1.5]")
    assert family.rule((3, 1), [1, 3]) is None
    assert "not sorted" in family.rule((3, 1), [3, 1])
    assert "same numbers" in family.rule((3, 1), [1, 4])
    assert family.answer((3, 1), [1, 3]) == "[1,3]"
