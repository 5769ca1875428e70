"""The multiplication family: the paper's statements, splits of the second factor, the casting-out rule."""

import pytest
from maker_tasks.multiply_problems import MultiplyDecompose, MultiplyProblems, Product

from maker import RedFlag, TaskError
from maker.problems import ATOMIC, Decomposing


def test_statements_read_as_the_paper_writes_them():
    family = MultiplyProblems()
    assert family.parse("Multiply the following numbers:\n46048 × 42098") == Product("46048", "42098")
    assert family.parse("12 x 034") == Product("12", "34")
    with pytest.raises(TaskError, match="not a multiplication statement"):
        family.parse("Multiply 12 by 34")


def test_the_decomposer_sees_lengths_only_and_its_splits_are_judged_by_the_rules():
    task = MultiplyDecompose()
    state = Decomposing(Product("1" * 900, "2" * 700), 0)
    assert "900 digits x 700 digits" in task.prompt(state) and "1111" not in task.prompt(state)
    assert task.oracle(state) == 350 and task.oracle(Decomposing(Product("5", "7"), 0)) == ATOMIC
    with pytest.raises(RedFlag, match="part empty"):
        task.parse(state, "count = 700")


def test_the_rule_casts_out_nines_and_elevens():
    family = MultiplyProblems()
    problem = Product("46048", "42098")
    assert family.rule(problem, str(46048 * 42098)) is None
    assert "nines" in family.rule(problem, str(46048 * 42098 + 9 * 11 + 1))
    assert "elevens" in family.rule(problem, str(46048 * 42098 + 9))  # nines cannot see it
    assert "digits" in family.rule(problem, "1" * 11)
