"""k per role from each role's own p-hat (maker.solve_estimate): the oracle tree's steps, the measured rows and
the plan's guarantee (simulated backend: replies made up from the oracle)."""

import asyncio
from collections import Counter

import pytest
from maker_tasks.multiply_problems import MultiplyProblems
from maker_tasks.sort_problems import SortProblems

from maker import ConfigError, SimulatedBackend, solve
from maker.kinds import p_full_by_kind
from maker.problems import DecomposerTask
from maker.solve_estimate import estimate_roles, oracle_steps


def drain(steps):
    """The steps a generator yields, and the value it returns."""
    out = []
    while True:
        try:
            out.append(next(steps))
        except StopIteration as done:
            return out, done.value


def test_the_oracle_tree_asks_the_steps_an_error_free_run_votes_on_and_returns_the_truth():
    for family, question in ((MultiplyProblems(), MultiplyProblems.paper_set(6, 1, 42)[0]),
                             (SortProblems(), SortProblems.paper_set(20, 1, 42)[0])):
        problem = family.parse(question.question)
        steps, result = drain(oracle_steps(family, problem))
        assert result == family.truth(problem)
        run = solve(family, [question], SimulatedBackend(DecomposerTask(family), error_rate=0.0), k=1)
        voted = {role: row["steps"] for role, row in run.summary(trees=False)["roles"].items()}
        assert Counter(role for role, _, _ in steps) == Counter({r: n for r, n in voted.items() if n})


def test_the_depth_limit_makes_the_oracle_tree_solve_whole():
    family = MultiplyProblems()
    problem = family.parse(MultiplyProblems.paper_set(5, 1, 42)[0].question)
    steps, result = drain(oracle_steps(family, problem, max_depth=0))
    assert {role for role, _, _ in steps} == {"solve"} and result == family.truth(problem)


def estimate(family, questions, error_rate, **settings):
    backend = SimulatedBackend(DecomposerTask(family), error_rate=error_rate, seed=3)
    return asyncio.run(estimate_roles(family, questions, backend, **settings))


def test_each_role_gets_the_k_its_own_p_hat_needs_and_the_plan_reaches_the_target():
    family, questions = MultiplyProblems(), MultiplyProblems.paper_set(5, 20, 42)
    clean = estimate(family, questions, 0.0, target=0.99, samples=60)
    noisy = estimate(family, questions, 0.15, target=0.99, samples=60)
    assert clean.simulated and "[SIMULATED]" in clean.lines()[0]
    assert {row.kind for row in clean.rows} == {"decompose", "solve", "compose"}
    assert all(row.p == 1.0 and row.states <= 60 and row.samples == 2 * row.states for row in clean.rows)
    rows = {row.kind: row for row in noisy.rows}
    assert rows["solve"].steps == 490 and rows["compose"].steps == 520  # the 20 trees' own steps
    for plan in (clean.plan, noisy.plan):
        assert plan.p_full >= 0.99
    assert all(noisy.k_by_role[role] > clean.k_by_role[role] for role in ("solve", "compose"))
    measures = {row.kind: row for row in noisy.rows}
    assert p_full_by_kind({r: _measure(m) for r, m in measures.items()}, noisy.k_by_role) == pytest.approx(
        noisy.plan.p_full)


def _measure(row):
    from maker.kinds import KindMeasure
    return KindMeasure(row.steps, row.p, row.p_low, row.valid / row.samples)


def test_a_role_without_steps_is_not_measured_and_a_bad_target_is_refused():
    family = SortProblems()
    found = estimate(family, SortProblems.paper_set(12, 3, 42), 0.0, target=0.9, samples=20)
    assert [row.kind for row in found.rows] == ["decompose", "compose"]  # single numbers need no solver step
    with pytest.raises(ConfigError, match="target success must be in"):
        estimate(family, SortProblems.paper_set(12, 1, 42), 0.0, target=1.5)
