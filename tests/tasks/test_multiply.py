"""The multiply task: red-flag parser, checks, parameters, the plan's shape and exact products."""

import asyncio
import doctest
import random

import networkx as nx
import pytest
from maker_tasks import multiply
from maker_tasks.multiply import MultiplyTask, Number, ProductStep, SumStep, parse_reply, product_of, sum_start

import maker
from maker import Backend, RedFlag, RedFlagReason, TaskParameterError

# (reply, expected candidate or None for a red flag, substring of the red flag's detail)
PARSER_TABLE = [
    ("digit = 7, carry = 3", (7, 3), None),
    ("digit=7,carry=3", (7, 3), None),
    ("DIGIT = 7 , Carry =3", (7, 3), None),
    ("digit = 7\ncarry = 3\n", (7, 3), None),
    ("carry = 3, digit = 7", (7, 3), None),  # order is free
    ("8 x 9 + 3 = 75, so\ndigit = 5, carry = 7", (5, 7), None),  # prose before
    ("digit = 5, carry = 7 (75 = 7 tens and 5 ones)", (5, 7), None),  # prose after
    ("digit = 4, carry = 7\ndigit = 5, carry = 7", (5, 7), None),  # the last of each key counts
    ("digit = 12, carry = 0", (12, 0), None),  # well-formed: the range is check's business
    ("digit = 7, carry =", None, "carry"),  # truncated
    ("digit = 7, car", None, "carry"),  # truncated earlier
    ("digit = 7", None, "carry"),
    ("carry = 3", None, "digit"),
    ("digit = 7.5, carry = 3", None, "whole number"),
    ("digit = -1, carry = 3", None, "whole number"),
    ("digit = seven, carry = 3", None, "whole number"),
    ("digit = 7, carry = 3.", None, "whole number"),
    ("digit = 123, carry = 3", None, "whole number"),
    ("digit = ٧, carry = 3", None, "whole number"),  # a non-ASCII digit
    ("last_digit = 7, carry = 3", None, "digit"),  # 'digit' must be a word
    ("The answer is 73.", None, "digit"),
    ("", None, "digit"),
]


@pytest.mark.parametrize("reply,expected,flag", PARSER_TABLE)
def test_parser(reply, expected, flag):
    if expected is not None:
        assert parse_reply(reply) == expected
    else:
        with pytest.raises(RedFlag) as info:
            parse_reply(reply)
        assert flag in info.value.detail
        assert info.value.reason is RedFlagReason.MALFORMED


@pytest.mark.parametrize(
    "step,candidate,problem",
    [(ProductStep(), (9, 8), None), (ProductStep(), (10, 0), "digit"), (ProductStep(), (0, 9), "carry"),
     (SumStep(), (9, 1), None), (SumStep(), (3, 2), "carry"), (SumStep(), (10, 1), "digit")],
)
def test_answer_free_check(step, candidate, problem):
    state = None  # the check reads only the rules' ranges, never the state's digits
    if problem is None:
        step.check(state, candidate)
    else:
        with pytest.raises(RedFlag) as info:
            step.check(state, candidate)
        assert info.value.reason is RedFlagReason.INVALID and problem in info.value.detail


@pytest.mark.parametrize(
    "params,name",
    [({"a": "12a", "b": "3"}, "--a"), ({"a": "12", "b": "012"}, "--b"), ({"a": "", "b": "1"}, "--a"),
     ({"a": "1" * 2001, "b": "1"}, "--a"), ({"a": -5, "b": 1}, "--a"), ({"a": "1"}, "--b"),
     ({"digits": 0}, "--digits"), ({"digits": 2001}, "--digits"), ({"digits": "many"}, "--digits"),
     ({"a": "1", "b": "2", "digits": 3}, "--digits"), ({}, "--a"), ({"a": "1", "b": "2", "c": "3"}, "--c")],
)
def test_bad_parameters_name_the_parameter(params, name):
    with pytest.raises(TaskParameterError) as info:
        MultiplyTask(**params)
    assert name in str(info.value)


def test_parameters():
    assert (MultiplyTask(a=12, b=0).a, MultiplyTask(a=12, b=0).b) == ("12", "0")
    drawn = MultiplyTask(digits=30, draw_seed=7)
    assert len(drawn.a) == len(drawn.b) == 30 and drawn.a[0] != "0"
    assert (MultiplyTask(digits=30, draw_seed=7).a, MultiplyTask(digits=30, draw_seed=7).b) == (drawn.a, drawn.b)
    assert MultiplyTask(digits=30, draw_seed=8).a != drawn.a


EDGE_CASES = [
    (0, 0), (0, 98765), (98765, 0), (1, 1), (7, 8), (9, 9), (1, 10**20), (10**20, 1),
    (10**12 - 1, 10**12 - 1), (10**7 - 1, 10**13 - 1), (12345, 9), (9, 12345), (123456789, 987654321),
    (10**15, 10**4), (2**64, 3**30), (5, 2**40),
]


@pytest.mark.parametrize("depth", [0, 1])
@pytest.mark.parametrize("a,b", EDGE_CASES)
def test_oracle_driven_runs_are_exact(a, b, depth):
    task = MultiplyTask(a=str(a), b=str(b))
    result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), k=1, depth=depth)
    assert result.solved and result.errors == 0
    assert result.steps == task.total_steps()
    assert product_of(result.final_state) == a * b


def test_single_chain_does_every_stage_in_order():
    task = MultiplyTask(a="987", b="6543")
    state, steps, kinds = task.initial_state(), 0, []
    while not task.is_done(state):
        truth = task.oracle(state)
        task.check(state, truth)  # the oracle obeys the rules
        assert task.parse(state, task.format_reply(state, truth)) == truth
        kinds.append(type(state.current).__name__)
        state = task.apply(state, truth)
        steps += 1
    assert steps == task.total_steps() and product_of(state) == 987 * 6543
    assert kinds == ["ProductState"] * 12 + ["SumState"] * (steps - 12)  # all partial products, then the sums
    assert [n.value for n in state.results[:4]] == [987 * 3, 987 * 40, 987 * 500, 987 * 6000]


def test_prompts_hold_only_the_step():
    task = MultiplyTask(a="4821", b="37")
    state = task.initial_state()
    assert task.prompt(state).startswith("Compute 1 x 7 + 0. ")
    assert "digit = <ones>, carry = <tens>" in task.prompt(state)
    assert "4821" not in task.prompt(state)
    pair = sum_start(Number("0512", 1), Number("96", 0))  # 5120 + 96: the 6 passes through free
    assert pair.out == "6" and (pair.x, pair.y) == ("05120", "00096")
    assert SumStep().prompt(pair).startswith("Compute 2 + 9 + 0. ")


@pytest.mark.parametrize("a,b", [("9999", "9999"), ("123", "45"), ("5", "0")])
def test_plausible_mistakes_are_wrong_and_well_formed(a, b):
    task = MultiplyTask(a=a, b=b)
    rng = random.Random(0)
    state = task.initial_state()
    while not task.is_done(state):
        truth = task.oracle(state)
        for _ in range(5):
            wrong = task.plausible_mistake(state, truth, rng)
            assert wrong != truth
            task.check(state, wrong)
            assert task.parse(state, task.format_reply(state, wrong)) == wrong
        state = task.apply(state, truth)


def test_plan_shape_and_run():
    task = MultiplyTask(a="31415926", b="27182818")
    plan = task.plan(1)
    plan.validate()
    assert nx.is_directed_acyclic_graph(plan.graph)
    assert len(plan.graph) == 8 + 7 and plan.total_steps() == task.total_steps()
    assert len(plan.critical_path()[0]) == 1 + 3  # one product, then log2(8) sums
    result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), k=2, plan=plan)
    assert result.solved and product_of(result.final_state) == 31415926 * 27182818
    # The end checks know the split, not the answer: a partial product by 2 carries at most 1.
    by_two = plan.subtask("product3")
    assert by_two.start.d == 2
    assert by_two.expect(by_two.start._replace(out="0" * 8, carry=1))
    assert not by_two.expect(by_two.start._replace(out="0" * 8, carry=2))
    assert not by_two.expect(by_two.start._replace(out="0" * 7, carry=0))


def test_journal_resumes_a_plan(tmp_path):
    task = MultiplyTask(a="5307", b="861")
    journal = tmp_path / "multiply.jsonl"
    first = maker.run(task, maker.SimulatedBackend(task, error_rate=0.1, seed=2), k=3, depth=1, journal=journal)
    again = maker.run(task, maker.SimulatedBackend(task, error_rate=0.1, seed=2), k=3, depth=1, journal=journal)
    assert first.solved and again.solved and again.resumed_steps == task.total_steps()
    assert product_of(again.final_state) == 5307 * 861


class InFlight(Backend):
    """Wraps a backend and records how many requests were waiting on it at once."""

    name = "in-flight"
    simulated = True

    def __init__(self, inner):
        self.inner, self.now, self.most = inner, 0, 0

    def observer(self):  # the simulated backend learns each prompt's state by observing the run
        return self.inner.observer()

    async def sample(self, request):
        return (await self.sample_many([request]))[0]

    async def sample_many(self, requests):
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0)  # let other chains' requests arrive
            return await self.inner.sample_many(requests)
        finally:
            self.now -= 1


def test_acceptance_two_50_digit_numbers_with_noisy_voters():
    task = MultiplyTask(digits=50, draw_seed=2025)
    a, b = int(task.a), int(task.b)
    assert len(str(a)) == len(str(b)) == 50
    plan = task.plan(1)
    products = [n for n in plan.graph if n.startswith("product")]
    assert len(products) == 50 and all(plan.graph.in_degree(n) == 0 for n in products)
    path, critical = plan.critical_path()
    assert critical * 10 < plan.total_steps()  # 412 of 5125 steps
    backend = InFlight(maker.SimulatedBackend(task, error_rate=0.05, seed=11))
    result = maker.run(task, backend, k=4, depth=1)
    assert result.solved and result.errors == 0
    assert product_of(result.final_state) == a * b
    assert backend.most > 1  # chains really ran side by side


def test_docstring_example_runs():
    failures, attempted = doctest.testmod(multiply)
    assert attempted and failures == 0


def test_malformed_and_rambling_replies_are_red_flagged():
    task = MultiplyTask(a="80952", b="4713")
    backend = maker.SimulatedBackend(task, error_rate=0.05, malformed_rate=0.2, too_long_rate=0.05, seed=4)
    result = maker.run(task, backend, k=3, depth=1)
    assert result.solved and product_of(result.final_state) == 80952 * 4713
    flags = result.statistics.red_flags
    assert flags["malformed"] > 0 and flags["too_long"] > 0  # rambling past the limit is too long, however it ended
