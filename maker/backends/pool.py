"""``EndpointPool``: several backends that serve the same models (vLLM servers, one per GPU) used as one.

Routing: each ``sample_many`` call (one round of one step) goes whole to the healthy endpoint with the
fewest calls outstanding, so a step's samples share that server's prefix cache and its ``n``. Ties go
to the endpoint used least, then the first listed.

Faults: a transient failure (``retry.is_transient``: timeouts, refused or reset connections, 429 and
5xx) ejects the endpoint and moves the call to another one. A call's samples come from one endpoint's
complete answer or not at all, so a fault never becomes a vote. An ejected endpoint is re-admitted
after a cooldown (doubling with each failure in a row, up to ``max_cooldown``) once its health check
passes (``probe()``: ``OpenAIBackend`` asks ``GET /models``; a backend without one is tried with the
next call). With every endpoint down a call waits up to ``wait_s`` for one to come back, then fails
with ``BackendConnectionError`` (which a ``RetryingBackend`` around the pool retries).

Why not LiteLLM's or vLLM's router: both bring a server or a large dependency tree for what is here a
least-outstanding choice and a circuit breaker; neither may cache responses (a cached sample fakes
agreement), and both would need the same ejection rules taught to them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from maker.backends.base import Backend, Sample, SampleRequest
from maker.backends.retry import is_transient
from maker.errors import BackendConnectionError, BackendError, ConfigError


@dataclass(eq=False)
class _Endpoint:
    backend: Backend
    label: str
    outstanding: int = 0
    calls: int = 0
    samples: int = 0
    failures: int = 0
    ejections: int = 0
    readmissions: int = 0
    failed_in_a_row: int = 0
    down_until: float | None = None  # None: admitted
    last_error: str = ""


class EndpointPool(Backend):
    """Routes calls over several backends serving the same models; ejects and re-admits failed ones.

    >>> from maker import OpenAIBackend
    >>> pool = EndpointPool([OpenAIBackend(f"http://10.0.0.{i}:8000/v1", "m") for i in (1, 2)])
    >>> [e["base_url"] for e in pool.describe()["endpoints"]]
    ['http://10.0.0.1:8000/v1', 'http://10.0.0.2:8000/v1']
    """

    name = "pool"
    batches = True  # a call is served whole by one endpoint: a wrapper must pass it on whole, not request by request

    def __init__(self, endpoints: Sequence[Backend], *, cooldown: float = 0.5, max_cooldown: float = 4.0,
                 wait_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if not endpoints:
            raise ConfigError("a pool needs at least one endpoint")
        if any(e.simulated for e in endpoints):
            raise ConfigError("a pool's endpoints must be real backends (the simulator needs no pool)")
        if not (cooldown > 0 and max_cooldown >= cooldown and wait_s >= 0):
            raise ConfigError(f"need cooldown > 0, max_cooldown >= cooldown, wait_s >= 0 "
                              f"(got {cooldown}, {max_cooldown}, {wait_s})")
        labels = [str(e.describe().get("base_url", f"{e.name}#{i}")) for i, e in enumerate(endpoints)]
        self.endpoints = [_Endpoint(e, label) for e, label in zip(endpoints, labels, strict=True)]
        self.cooldown, self.max_cooldown, self.wait_s = cooldown, max_cooldown, wait_s
        self._clock, self._sleep = clock, sleep
        self._readmitting: set[_Endpoint] = set()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "simulated": False, "endpoints": [e.backend.describe() for e in self.endpoints]}

    def agent_defaults(self, agent: str | None) -> dict[str, Any]:
        return self.endpoints[0].backend.agent_defaults(agent)  # they serve the same models

    def statistics(self) -> dict[str, int | float]:
        """Per endpoint: ``endpoint<i>.calls``, ``.samples``, ``.failures`` (calls that failed and moved on),
        ``.ejections``, ``.readmissions``."""
        counters: dict[str, int | float] = {}
        for i, e in enumerate(self.endpoints):
            for key in ("calls", "samples", "failures", "ejections", "readmissions"):
                counters[f"endpoint{i}.{key}"] = getattr(e, key)
        return counters

    async def sample(self, request: SampleRequest) -> list[Sample]:
        return (await self.sample_many([request]))[0]

    async def sample_many(self, requests: Sequence[SampleRequest]) -> list[list[Sample]]:
        """The whole call on one endpoint; on a transient failure, the whole call again on another."""
        while True:
            endpoint = await self._choose()
            endpoint.outstanding += 1
            endpoint.calls += 1
            try:
                batches = await endpoint.backend.sample_many(requests)
            except BackendError as error:
                if not is_transient(error):
                    raise
                self._eject(endpoint, error)
                continue
            finally:
                endpoint.outstanding -= 1
            endpoint.failed_in_a_row = 0
            endpoint.samples += sum(len(batch) for batch in batches)
            return batches

    async def _choose(self) -> _Endpoint:
        """The admitted endpoint with the fewest calls outstanding, re-admitting those whose cooldown is
        over; with none admitted, wait (at most ``wait_s``) for one to come back."""
        deadline = self._clock() + self.wait_s
        while True:
            await self._readmit_due()
            admitted = [e for e in self.endpoints if e.down_until is None]
            if admitted:
                return min(admitted, key=lambda e: (e.outstanding, e.calls))
            now = self._clock()
            if now >= deadline:
                errors = "; ".join(f"{e.label}: {e.last_error}" for e in self.endpoints)
                raise BackendConnectionError(f"all {len(self.endpoints)} endpoints of the pool are down after waiting "
                                             f"{self.wait_s:g} s ({errors})")
            soonest = min(e.down_until for e in self.endpoints if e.down_until is not None)
            await self._sleep(max(0.0, min(soonest, deadline) - now) + 0.001)

    async def _readmit_due(self) -> None:
        now = self._clock()
        for endpoint in self.endpoints:
            if endpoint.down_until is None or endpoint.down_until > now or endpoint in self._readmitting:
                continue
            self._readmitting.add(endpoint)  # one health check at a time per endpoint
            try:
                probe = getattr(endpoint.backend, "probe", None)
                healthy = True if probe is None else await probe()
            finally:
                self._readmitting.discard(endpoint)
            if healthy:
                endpoint.down_until = None
                endpoint.readmissions += 1
            else:
                self._eject(endpoint, BackendConnectionError("health check failed"), call_failed=False)

    def _eject(self, endpoint: _Endpoint, error: BackendError, *, call_failed: bool = True) -> None:
        endpoint.failures += call_failed
        endpoint.failed_in_a_row += 1
        endpoint.last_error = str(error)
        if endpoint.down_until is None:
            endpoint.ejections += 1
        wait = min(self.max_cooldown, self.cooldown * 2 ** (endpoint.failed_in_a_row - 1))
        endpoint.down_until = self._clock() + wait

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.backend.aclose()
