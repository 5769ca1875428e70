"""Plans as graphs: validation, order, critical path, and the Hanoi split."""

import pytest

import maker
from maker import Plan, SimulatedBackend, Subtask, TaskError, load_task
from maker.planner import plan_for
from maker.verify import verify_journal


def _plan(*subtasks):
    plan = Plan()
    for sub in subtasks:
        plan.add(sub)
    return plan


def test_order_and_critical_path():
    plan = _plan(
        Subtask("a", start=0, steps=5),
        Subtask("b", start=0, steps=2),
        Subtask("c", start_from=lambda r: r["a"], steps=4, after=("a", "b")),
    )
    assert plan.order() == ["a", "b", "c"]
    assert plan.critical_path() == (["a", "c"], 9)
    assert plan.total_steps() == 11


def test_cycle_is_a_clear_error():
    plan = _plan(
        Subtask("a", start_from=lambda r: r["b"], steps=1, after=("b",)),
        Subtask("b", start_from=lambda r: r["a"], steps=1, after=("a",)),
    )
    with pytest.raises(TaskError, match="dependency cycle"):
        plan.validate()


def test_dangling_dependency_is_a_clear_error():
    plan = _plan(Subtask("a", start_from=lambda r: r["ghost"], steps=1, after=("ghost",)))
    with pytest.raises(TaskError, match="depends on 'ghost', which is not in the plan"):
        plan.validate()


@pytest.mark.parametrize(
    "subtask,message",
    [
        (Subtask("x", steps=1), "exactly one of start or start_from"),
        (Subtask("x", start=1, start_from=lambda r: 1, steps=1), "exactly one of start or start_from"),
        (Subtask("x", start_from=lambda r: 1, steps=1), "names none"),
    ],
)
def test_bad_subtasks(subtask, message):
    with pytest.raises(TaskError, match=message):
        Plan().add(subtask)


def test_duplicate_names():
    plan = _plan(Subtask("a", start=0, steps=1))
    with pytest.raises(TaskError, match="two subtasks named 'a'"):
        plan.add(Subtask("a", start=0, steps=1))


@pytest.mark.parametrize("disks,depth", [(3, 1), (6, 2), (7, 5), (10, 6), (9, 8)])
def test_hanoi_plan_covers_every_move(disks, depth):
    task = load_task("hanoi", disks=disks)
    plan = plan_for(task, depth)
    assert len(plan.graph) == 2**depth
    assert plan.total_steps() == 2**disks - 1
    assert plan.graph.number_of_edges() == 0  # every chain's start is known in advance
    assert plan.critical_path()[1] == 2 ** (disks - depth)


def test_hanoi_plan_never_needs_the_oracle(monkeypatch):
    task = load_task("hanoi", disks=8)
    monkeypatch.setattr(type(task), "oracle", lambda self, state: pytest.fail("the planner used the oracle"))
    plan_for(task, 4)


@pytest.mark.parametrize("depth", [0, 1, 3, 6])
def test_every_depth_gives_the_same_verified_solution(tmp_path, depth):
    task = load_task("hanoi", disks=9)
    journal = tmp_path / f"d{depth}.jsonl"
    result = maker.run(task, SimulatedBackend(task, error_rate=0.05, seed=depth), k=3, depth=depth, journal=journal)
    assert result.solved and result.errors == 0 and result.steps == 511 and len(result.nodes) == 2**depth
    report = verify_journal(journal)
    assert report["valid"] and report["steps"] == 511 and report["failed_end_checks"] == 0
    # the digest of the decided moves in plan order: the depth-0 solution is the reference
    reference = maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1, journal=tmp_path / "ref.jsonl")
    assert reference.solved
    assert report["solution_sha256"] == verify_journal(tmp_path / "ref.jsonl")["solution_sha256"]


@pytest.mark.parametrize("depth", [-1, 9])
def test_bad_depth(depth):
    with pytest.raises((TaskError, ValueError), match="depth"):
        plan_for(load_task("hanoi", disks=9), depth)


def test_task_without_planner():
    from tests.toy import Countdown

    with pytest.raises(TaskError, match="no planner"):
        plan_for(Countdown(), 2)


def test_plan_picture(tmp_path):
    from maker.planner import draw_plan

    path = draw_plan(plan_for(load_task("hanoi", disks=8), 3), tmp_path / "plan.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
