"""RetryingBackend: what is retried, the backoff, giving up, and a whole run against a faulty server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

import maker
from maker.backends.base import Backend, Sample, SampleRequest
from maker.backends.openai import OpenAIBackend
from maker.backends.retry import RetryingBackend, is_transient
from maker.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    BackendTimeout,
    ConfigError,
)
from tests.backends.fault_server import FaultKind, SeenRequest, fault_server, threaded_fault_server

OK = [Sample("ok", 1, "stop")]


class FlakyBackend(Backend):
    """Fails with the scripted errors in order, then answers "ok"."""

    name = "flaky"
    batches = True  # it overrides sample_many: a batch is one call

    def __init__(self, errors: Sequence[BaseException] = ()) -> None:
        self.errors = list(errors)
        self.calls: list[str] = []
        self.batch_sizes: list[int] = []
        self.closed = 0

    async def sample(self, request: SampleRequest) -> list[Sample]:
        self.calls.append("sample")
        if self.errors:
            raise self.errors.pop(0)
        return OK

    async def sample_many(self, requests: Sequence[SampleRequest]) -> list[list[Sample]]:
        self.calls.append("sample_many")
        self.batch_sizes.append(len(requests))
        if self.errors:
            raise self.errors.pop(0)
        return [OK for _ in requests]

    async def aclose(self) -> None:
        self.closed += 1


class FakeTime:
    """An injectable clock and sleep: sleeping only moves the clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class LongestWait(random.Random):
    """Full jitter always drawing the top of its range, so delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


def retrying(inner: Backend, time: FakeTime, **settings: object) -> RetryingBackend:
    return RetryingBackend(inner, sleep=time.sleep, clock=time.clock, rng=LongestWait(), **settings)  # type: ignore[arg-type]


TRANSIENT = [
    BackendTimeout("t"),
    BackendConnectionError("c"),
    BackendResponseError("r"),
    BackendHTTPError("h", status=429),
    BackendHTTPError("h", status=500),
    BackendHTTPError("h", status=503),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: f"{type(e).__name__}-{getattr(e, 'status', '')}")
async def test_transient_errors_are_retried(error: BackendError) -> None:
    time = FakeTime()
    inner = FlakyBackend([error, error])
    backend = retrying(inner, time)
    assert await backend.sample(SampleRequest("p")) == OK
    assert backend.retries == 2 and len(inner.calls) == 3
    assert is_transient(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(status: int) -> None:
    error = BackendHTTPError("bad", status=status)
    inner = FlakyBackend([error])
    backend = retrying(inner, FakeTime())
    with pytest.raises(BackendHTTPError) as caught:
        await backend.sample(SampleRequest("p"))
    assert caught.value is error  # raised as it was, not wrapped
    assert backend.retries == 0 and len(inner.calls) == 1


async def test_other_errors_are_not_retried() -> None:
    inner = FlakyBackend([ValueError("a bug"), BackendError("not a transport failure")])
    backend = retrying(inner, FakeTime())
    with pytest.raises(ValueError, match="a bug"):
        await backend.sample(SampleRequest("p"))
    with pytest.raises(BackendError, match="not a transport failure"):
        await backend.sample(SampleRequest("p"))
    assert backend.retries == 0


async def test_backoff_doubles_up_to_max_delay() -> None:
    time = FakeTime()
    backend = retrying(FlakyBackend([BackendTimeout("t")] * 6), time, base_delay=0.5, max_delay=4.0)
    await backend.sample(SampleRequest("p"))
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_jitter_stays_within_the_backoff_bound() -> None:
    time = FakeTime()
    backend = RetryingBackend(
        FlakyBackend([BackendTimeout("t")] * 7),
        sleep=time.sleep,
        clock=time.clock,
        rng=random.Random(3),
        base_delay=1.0,
        max_delay=8.0,
    )
    await backend.sample(SampleRequest("p"))
    bounds = [1, 2, 4, 8, 8, 8, 8]
    assert all(0 <= slept <= bound for slept, bound in zip(time.sleeps, bounds, strict=True))
    assert len(set(time.sleeps)) == len(time.sleeps)  # drawn, not fixed


async def test_gives_up_after_max_attempts_with_the_same_kind_of_error() -> None:
    time = FakeTime()
    errors = [BackendHTTPError(f"HTTP 503 number {i}", status=503) for i in range(10)]
    inner = FlakyBackend(errors[:])
    backend = retrying(inner, time, max_attempts=4, base_delay=1.0)
    with pytest.raises(BackendHTTPError) as caught:
        await backend.sample(SampleRequest("p"))
    assert str(caught.value) == "gave up after 4 attempts over 7.0 s: HTTP 503 number 3"
    assert caught.value.status == 503
    assert caught.value.__cause__ is errors[3]  # the last error, chained
    assert backend.retries == 3 and len(inner.calls) == 4


async def test_gives_up_before_a_wait_that_would_pass_the_time_limit() -> None:
    time = FakeTime()
    inner = FlakyBackend([BackendConnectionError("refused")] * 10)
    backend = retrying(inner, time, max_attempts=10, base_delay=1.0, max_total_s=5.0)
    with pytest.raises(BackendConnectionError, match=r"^gave up after 3 attempts over 3.0 s: refused$"):
        await backend.sample(SampleRequest("p"))
    assert time.sleeps == [1.0, 2.0]  # the next wait (4 s) would have ended after 5 s


async def test_sample_many_is_forwarded_whole() -> None:
    inner = FlakyBackend([BackendTimeout("t")])
    backend = retrying(inner, FakeTime())
    requests = [SampleRequest("p", 1), SampleRequest("p", 2)]
    assert await backend.sample_many(requests) == [OK, OK]
    assert inner.calls == ["sample_many", "sample_many"] and inner.batch_sizes == [2, 2]


async def test_sample_many_retries_only_the_failed_request_of_a_non_batching_backend() -> None:
    class OneBadRequest(Backend):  # inherits Backend.sample_many: no batching
        def __init__(self) -> None:
            self.prompts: list[str] = []

        async def sample(self, request: SampleRequest) -> list[Sample]:
            self.prompts.append(request.prompt)
            if request.prompt == "bad" and self.prompts.count("bad") == 1:
                raise BackendConnectionError("reset")
            return OK

    inner = OneBadRequest()
    backend = retrying(inner, FakeTime())
    assert await backend.sample_many([SampleRequest("good"), SampleRequest("bad")]) == [OK, OK]
    assert sorted(inner.prompts) == ["bad", "bad", "good"] and backend.retries == 1


async def test_wrapper_takes_name_and_simulation_flag_from_the_inner_backend() -> None:
    task = maker.load_task("hanoi", disks=3)
    inner = FlakyBackend([BackendTimeout("t")])
    backend = retrying(inner, FakeTime(), max_attempts=3)
    await backend.sample(SampleRequest("p"))
    assert (backend.name, backend.simulated) == ("flaky", False)
    assert backend.describe() == {
        "name": "flaky",
        "simulated": False,
        "retry": {"max_attempts": 3, "max_total_s": 600.0, "base_delay": 0.5, "max_delay": 30.0, "retries": 1},
    }
    sim = RetryingBackend(maker.SimulatedBackend(task))
    assert (sim.name, sim.simulated) == ("sim", True)
    async with backend:
        pass
    assert inner.closed == 1


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        RetryingBackend(FlakyBackend(), max_attempts=0)
    with pytest.raises(ConfigError):
        RetryingBackend(FlakyBackend(), base_delay=-1)


async def test_retries_real_server_faults_then_gives_up_on_persistent_ones() -> None:
    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    async with fault_server(delay_s=0.5) as server:
        inner = OpenAIBackend(server.base_url, "m", api_key="sk-secret-key", timeout=0.1)
        backend = RetryingBackend(inner, sleep=no_wait, max_attempts=6)
        async with backend:
            server.set_faults(["http500", "reset", "malformed", "delay", "http429"])
            assert len(await backend.sample(SampleRequest("p", n=2))) == 2
            assert backend.retries == 5
            server.set_faults(rate=1.0, kinds=["http503"])
            with pytest.raises(
                BackendHTTPError, match=r"gave up after 6 attempts over .* s: POST .* HTTP 503"
            ) as caught:
                await backend.sample(SampleRequest("p"))
            assert "sk-secret-key" not in str(caught.value)


def test_a_run_survives_a_faulty_restarting_server() -> None:
    # The server answers like a perfect model: it looks the prompt's state up in the oracle's
    # trajectory (test scaffolding) and replies with the oracle's move.
    task = maker.load_task("hanoi", disks=6)
    states, state = {}, task.initial_state()
    while not task.is_done(state):
        states[task.prompt(state)] = state
        state = task.apply(state, task.oracle(state))

    def reply(seen: SeenRequest) -> str:
        state = states[seen.prompt]
        return task.format_reply(state, task.oracle(state))

    with threaded_fault_server(reply, delay_s=0.5, down_s=0.05) as server:
        restart: list[FaultKind | None] = ["restart"]
        two_restarts = [None] * 8 + restart + [None] * 12 + restart
        server.set_faults(two_restarts, rate=0.2, seed=7)  # None: a 20 % chance of a random fault
        inner = OpenAIBackend(server.base_url, "test-model", timeout=0.1)
        backend = RetryingBackend(inner, max_attempts=30, base_delay=0.005, max_delay=0.05, rng=random.Random(0))
        result = maker.run(task, backend, k=3)
    assert result.solved and result.errors == 0 and result.steps == 63
    faults = sum(server.faults_injected.values())
    assert server.restarts == 2 and faults >= 0.15 * len(server.requests_seen)
    assert backend.retries >= faults and result.statistics.backend_retries == backend.retries
    assert result.statistics.valid_votes == 3 * 63  # a fault never became a vote
    print(f"\n{faults} faults in {len(server.requests_seen)} requests ({server.faults_injected}), "
          f"{server.restarts} restarts, {backend.retries} retries; solved {result.solved}, errors {result.errors}")
