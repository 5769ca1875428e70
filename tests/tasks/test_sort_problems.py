"""The sorting family: the paper's statements, splits of a list's length, merges one comparison at a time
(simulated backend: replies made up from the oracle)."""

import random

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


def test_a_merge_compares_digit_by_digit_copies_what_needs_no_comparison_and_takes_the_left_on_a_tie():
    step = CompareStep()
    state = settle(Merging((1, 5), (1, 2, 9), ()))
    state = step.apply(state, 1)  # 1 against 1, one digit each: a tie, the left's moves
    assert state.left == (5,) and state.out == (1,) and state.place == 0
    state = step.apply(step.apply(state, 5), 5)  # 5 against 1, then 5 against 2: the right's move
    assert not step.is_done(state) and state.out == (1, 1, 2)
    state = step.apply(state, 9)  # then 9 is copied over without a comparison
    assert step.is_done(state) and state.out == (1, 1, 2, 5, 9)
    assert settle(Merging((), (), (), (3, -1, 2))).pending == (2,)
    state = settle(Merging((1352,), (1342, 1352), ()))  # equal digits move on to the next place
    asked = []
    while not step.is_done(state):
        asked.append(step.prompt(state)[len("Which digit is larger, "):][:6])
        state = step.apply(state, step.oracle(state))
    assert asked == ["1 or 1", "3 or 3", "5 or 4", "1 or 1", "3 or 3", "5 or 5", "2 or 2"] and state.out == (1342, 1352, 1352)


def test_a_comparison_shows_digits_of_the_numbers_shifted_and_at_one_width():
    family = SortProblems()
    task, state = family.composer((-523, -9950, 4), 1, [-523], [-9950, 4])
    assert task.prompt(state) == "Which digit is larger, 9 or 0? Reply with exactly: larger = <the digit>"  # 9477, 0050
    assert task.paraphrase(state, 1).startswith("Which digit is larger, 0 or 9?") and task.paraphrase(state, 2) is None
    assert task.parse(state, "larger = 9") == 9 and task.format_reply(state, 9) == "larger = 9"
    assert task.apply(state, 9).out == (-9950,)  # 9477 is the larger: the right's -9950 moves
    assert family.solver((5, 3))[1].offset == 0  # nothing negative: shown as they are


def test_a_reply_must_name_one_of_the_two_digits():
    step, state = CompareStep(), settle(Merging((7,), (-2,), (), (), 10))  # shown as 17 and 08
    assert step.prompt(state).startswith("Which digit is larger, 1 or 0?")
    assert step.parse(state, "larger = 1") == 1
    with pytest.raises(RedFlag, match="neither"):
        step.parse(state, "larger = 3")
    with pytest.raises(RedFlag, match="larger = D"):
        step.parse(state, "larger = 17")
    assert sorted({step.prompt(s) for s in step.training_states(random.Random(0), 3000)}) == sorted(
        f"Which digit is larger, {a} or {b}? Reply with exactly: larger = <the digit>" for a in range(10) for b in range(10))


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


def test_the_shipped_comparison_microagent_is_right_on_every_state_greedily():
    """Its step has 100 states, all of them in its training (so this is no held-out check): every greedy reply
    names the larger digit, so no vote can lock an error in."""
    import asyncio

    from maker.backends.hf import HFBackend
    from maker.samples import SampleRequest

    step, folder = CompareStep(), SortProblems.models["sort-compare"]
    states = [Merging((a,), (b,), ()) for a in range(10) for b in range(10)]

    async def replies():
        async with HFBackend({"sort-compare": str(folder)}) as backend:
            return await backend.sample_many([SampleRequest(step.prompt(s), 1, 0.0, 8, agent="sort-compare")
                                              for s in states])

    for state, (sample,) in zip(states, asyncio.run(replies()), strict=True):
        assert step.parse(state, sample.text) == step.oracle(state), (step.prompt(state), sample.text)
