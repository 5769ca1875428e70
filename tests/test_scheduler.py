"""Running plans: concurrency, end-state checks with one rerun, journals and resume of many chains."""

import asyncio

import pytest

import maker
from maker import Backend, BackendError, Plan, ScriptedBackend, SimulatedBackend, StepError, Subtask, load_task
from maker.journal import JournalReader
from tests.toy import Countdown


class Yielding(Backend):
    """Wraps a backend, yields to the event loop on every call, and records the most calls in flight."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.name, self.simulated = inner, inner.name, inner.simulated
        self.in_flight = self.most_in_flight = self.calls = 0
        self.fail_after = fail_after

    def observer(self):  # the simulated backend learns each prompt's state by observing the run
        return self.inner.observer()

    async def sample(self, request):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise BackendError("the server went away")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0)
        try:
            return await self.inner.sample(request)
        finally:
            self.in_flight -= 1


def test_chains_run_concurrently():
    task = load_task("hanoi", disks=8)
    backend = Yielding(SimulatedBackend(task, error_rate=0.05))
    result = maker.run(task, backend, k=2, depth=4)
    assert result.solved and result.errors == 0 and result.steps == 255
    assert backend.most_in_flight >= 16  # all 16 chains had requests out at once


def test_max_concurrency_bounds_chains_in_flight():
    task = load_task("hanoi", disks=8)
    backend = Yielding(SimulatedBackend(task, error_rate=0.0))
    maker.run(task, backend, k=1, depth=4, max_concurrency=3, first_temperature=0.1)
    assert backend.most_in_flight == 3


def _countdown_plan(expect):
    plan = Plan()
    plan.add(Subtask("count", start=3, steps=3, expect=expect))
    return plan


def test_failed_end_check_reruns_the_chain_with_a_larger_k(tmp_path):
    calls = {"n": 0}

    def reply(request):  # the first three samples skip ahead by two; later ones are right
        calls["n"] += 1
        state = int(request.prompt.split()[2])
        return str(state - 2) if calls["n"] <= 3 else str(state - 1)

    journal = tmp_path / "j.jsonl"
    result = maker.run(Countdown(), ScriptedBackend(reply_for=reply), k=1, plan=_countdown_plan(lambda s: s == 0),
                       journal=journal)
    assert result.solved and result.nodes[0]["reruns"] == 1
    stats = result.statistics
    # the voided attempt's wrong steps were caught by the end check; the solution has none
    assert stats.errors == 0 and stats.caught_errors == 3 and stats.redone_steps == 3 and stats.steps == 3
    assert stats.samples == 3 + 3 * 2  # its samples were spent all the same; the redo ran at k = 2
    assert [r["candidate"] for r in JournalReader(journal).records()] == [2, 1, 0]  # only the redo survives


def test_end_check_failing_twice_is_a_clear_error():
    backend = ScriptedBackend(reply_for=lambda r: str(int(r.prompt.split()[2]) - 1))
    with pytest.raises(StepError, match="fails its check, twice"):
        maker.run(Countdown(), backend, k=1, plan=_countdown_plan(lambda s: s == 99))


def test_multi_chain_run_resumes_after_a_backend_failure(tmp_path):
    task = load_task("hanoi", disks=8)
    journal = tmp_path / "j.jsonl"
    with pytest.raises(BackendError) as info:
        maker.run(task, Yielding(SimulatedBackend(task, error_rate=0.05), fail_after=400), k=2, depth=3, journal=journal)
    done_before = info.value.statistics.steps
    assert 0 < done_before < 255
    result = maker.run(task, SimulatedBackend(task, error_rate=0.05), k=2, depth=3, journal=journal)
    assert result.solved and result.errors == 0 and result.resumed_steps == done_before
    grouped = {}
    for record in JournalReader(journal).records():
        grouped.setdefault(record["chain"], []).append(record)
    assert sorted(grouped) == list(range(8))
    assert sum(len(r) for r in grouped.values()) == 255  # nothing lost, nothing duplicated


def test_start_from_passes_results_along():
    plan = Plan()
    plan.add(Subtask("first", start=5, steps=2))
    plan.add(Subtask("second", start_from=lambda r: r["first"], steps=3, after=("first",)))
    task = Countdown(start=5)
    result = maker.run(task, SimulatedBackend(task, error_rate=0.1), k=2, plan=plan)
    assert result.solved and result.final_state == 0 and result.steps == 5


def test_max_steps_is_for_single_chains():
    task = load_task("hanoi", disks=5)
    with pytest.raises(maker.ConfigError, match="max_steps"):
        maker.run(task, SimulatedBackend(task), depth=2, max_steps=3)


def test_a_failing_chain_cancels_the_requests_still_in_flight():
    class Slow(Backend):
        name, simulated = "slow", False

        def __init__(self):
            self.cancelled = 0

        async def sample(self, request):
            if "3" in request.prompt:  # chain "a" is answered at once, with nonsense
                return [maker.Sample("nonsense", 1)] * request.n
            try:
                await asyncio.sleep(60)  # chain "b" waits on a slow server
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return []

    plan = Plan()
    plan.add(Subtask("a", start=3, steps=3))
    plan.add(Subtask("b", start=9, steps=9))
    backend = Slow()
    with pytest.raises(maker.StepFailed):
        maker.run(Countdown(start=3), backend, k=1, plan=plan, max_samples_per_step=4, first_temperature=0.1)
    assert backend.cancelled == 1  # b's request did not outlive the failed run


def test_one_backend_serves_two_agents_in_one_run():
    """Multiplication's plan runs partial products and sums as chains of their own step types;
    each request names the chain's microagent, and the simulator answers each from its own task."""

    class Recording(Backend):
        def __init__(self, inner):
            self.inner, self.name, self.simulated, self.agents = inner, inner.name, inner.simulated, []

        def observer(self):
            return self.inner.observer()

        async def sample(self, request):
            self.agents.append(request.agent)
            return await self.inner.sample(request)

    task = maker.load_task("multiply", a="4096", b="379")
    backend = Recording(maker.SimulatedBackend(task, error_rate=0.1, seed=3))
    result = maker.run(task, backend, k=3, depth=1)
    assert result.solved and result.errors == 0
    assert set(backend.agents) == {"multiply-product", "multiply-sum"}
    overridden = Recording(maker.SimulatedBackend(task))
    assert maker.run(task, overridden, k=1, agent="one-for-all", depth=1).solved  # a run may override every chain's
    assert set(overridden.agents) == {"one-for-all"}


def test_a_redo_interrupted_and_resumed_keeps_its_larger_k(tmp_path):
    calls = {"n": 0}

    def reply(request):  # three wrong samples void the first attempt; the redo fails mid-way once
        calls["n"] += 1
        if calls["n"] == 6:
            raise BackendError("the server went away")
        state = int(request.prompt.split()[2])
        return str(state - 2) if calls["n"] <= 3 else str(state - 1)

    class Flaky(ScriptedBackend):
        async def sample(self, request):
            return [maker.Sample(reply(request), 1)] * request.n

    journal = tmp_path / "j.jsonl"
    plan = _countdown_plan(lambda s: s == 0)
    with pytest.raises(BackendError):
        maker.run(Countdown(), Flaky(reply_for=reply), k=1, plan=plan, journal=journal, first_temperature=0.5,
                  temperature=0.5)
    resumed = ScriptedBackend(reply_for=lambda r: str(int(r.prompt.split()[2]) - 1))
    result = maker.run(Countdown(), resumed, k=1, plan=plan, journal=journal, first_temperature=0.5, temperature=0.5)
    assert result.solved and result.nodes[0]["reruns"] == 1 and result.resumed_steps == 2
    assert [r.n for r in resumed.requests] == [2]  # the redo's last step at its k = 2, not the run's k = 1


# --- a task author's first hour (issue 11) --------------------------------------------------------
class ShortCountdown(Countdown):
    """Declares two steps more than it takes."""

    def total_steps(self):
        return self.params.start + 2


def test_a_run_done_before_its_declared_total_is_not_solved_and_does_not_verify(tmp_path):
    from maker.verify import verify_journal

    task = load_task("tests.test_scheduler:ShortCountdown", start=4)
    result = maker.run(task, SimulatedBackend(task, error_rate=0.0), journal=tmp_path / "run.jsonl")
    assert result.steps == 4 and result.errors == 0 and not result.solved
    assert result.unsolved_reason == "is_done after 4 steps, but the task declares total_steps() = 6"
    report = verify_journal(tmp_path / "run.jsonl")
    assert report["complete"] and report["declared_steps"] == 6 and not report["valid"]


def test_a_task_that_never_finishes_stops_at_the_default_step_cap(monkeypatch):
    import maker.scheduler

    class Endless(Countdown):
        def is_done(self, state):
            return False

        def total_steps(self):
            return None

    monkeypatch.setattr(maker.scheduler, "DEFAULT_STEP_CAP", 40)
    task = Endless(start=3)
    result = maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1)
    assert result.steps == 40 and not result.solved
    assert "reached the default cap of 40 steps (the task declares no total_steps())" in result.stopped_reason
    assert maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1, max_steps=45).steps == 45  # a run may allow more


def test_maker_run_inside_a_running_event_loop_points_to_run_async():
    task = Countdown(start=2)

    async def in_a_notebook():
        return maker.run(task, SimulatedBackend(task))

    with pytest.raises(maker.ConfigError, match="inside a running event loop.*await maker.run_async"):
        asyncio.run(in_a_notebook())


def test_a_task_that_defines_check_has_it_applied_without_declaring_has_check():
    assert "has_check" not in vars(Countdown)  # it only defines check()
    wrong_first = {}

    def reply(request):  # each step's first reply does not count down: it breaks the check
        state = int(request.prompt.split()[2])
        wrong_first[state] = wrong_first.get(state, 0) + 1
        return str(state if wrong_first[state] == 1 else state - 1)

    result = maker.run(Countdown(start=3), ScriptedBackend(reply_for=reply), k=1)
    assert result.solved and result.statistics.red_flags["invalid"] == 3 and result.config.checks


def test_a_plan_chain_at_the_default_step_cap_stops_the_run_before_its_state_feeds_others(monkeypatch):
    import maker.scheduler

    class EndlessPlan(Countdown):
        def is_done(self, state):
            return False

        def total_steps(self):
            return None

        def plan(self, depth):
            plan = Plan()
            plan.add(Subtask("first", start=100))
            plan.add(Subtask("then", start_from=lambda results: results["first"], after=("first",)))
            return plan

    monkeypatch.setattr(maker.scheduler, "DEFAULT_STEP_CAP", 30)
    task = EndlessPlan(start=3)
    with pytest.raises(StepError, match="subtask 'first' reached the default cap of 30 steps without is_done: give it "
                                        "its step count \\(Subtask\\(steps=...\\)\\)") as info:
        maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1, depth=1)
    assert info.value.statistics.steps == 30
