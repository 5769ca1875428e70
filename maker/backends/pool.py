"""``EndpointPool``: several backends that serve the same models (vLLM servers, one per GPU) used as one.

Routing: each ``sample_many`` call (one round of one step) goes whole to the healthy endpoint with the
fewest calls outstanding; a later round of the same step goes back to the endpoint of its earlier one
while that one is healthy and at most one call busier than the least busy, so a step's samples share a
server's prefix cache and its ``n``. Ties go to the endpoint used least, then the first listed.

Faults: a transient failure (``retry.is_transient``: timeouts, refused or reset connections, 429 and
5xx) ejects the endpoint and moves the call to another one. A call's samples come from one endpoint's
complete answer or not at all, so a fault never becomes a vote. A call in flight on an endpoint that
fails moves when it fails itself (at once for a refused or reset connection, after the backend's
timeout for a hung server). An ejected endpoint is health-checked in the background after a cooldown
(doubling with each ejection or failed check in a row, up to ``max_cooldown``; ``probe()``:
``OpenAIBackend`` asks ``GET /models``, and any answer but 429 or 5xx counts as up; a backend without
``probe`` is tried with the next call) and re-admitted once it passes. A call moves at most
``2 x endpoints`` times, and with every endpoint down waits at most ``wait_s`` for one to come back;
then it fails with its last error (which a ``RetryingBackend`` around the pool retries).

Why not LiteLLM's or vLLM's router: both bring a server or a large dependency tree for what is here a
least-outstanding choice and a circuit breaker; neither may cache responses (a cached sample fakes
agreement), and both would need the same ejection rules taught to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
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
    failed_in_a_row: int = 0  # ejections and failed health checks since the last success
    down_until: float | None = None  # None: admitted
    epoch: int = 0  # counts admissions: a call that began before the latest one does not eject it again
    last_error: str = ""
    probing: bool = False


class EndpointPool(Backend):
    """Routes calls over several backends serving the same models; ejects and re-admits failed ones.

    >>> from maker import OpenAIBackend
    >>> pool = EndpointPool([OpenAIBackend(f"http://10.0.0.{i}:8000/v1", "m") for i in (1, 2)])
    >>> [e["base_url"] for e in pool.describe()["endpoints"]]
    ['http://10.0.0.1:8000/v1', 'http://10.0.0.2:8000/v1']
    """

    name = "pool"
    batches = True  # a call is served whole by one endpoint: a wrapper must pass it on whole, not request by request
    AFFINITY_SIZE = 4096  # steps whose endpoint is remembered (about the chains in flight, with room)

    def __init__(self, endpoints: Sequence[Backend], *, cooldown: float = 0.5, max_cooldown: float = 4.0,
                 wait_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
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
        self._clock = clock
        self._affinity: OrderedDict[str, _Endpoint] = OrderedDict()  # a step's prompt -> its endpoint
        self._probes: set[asyncio.Task[None]] = set()
        # set when an endpoint comes back, so that waiting calls wake; one per event loop
        self._readmitted: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "simulated": False, "endpoints": [e.backend.describe() for e in self.endpoints]}

    def statistics(self) -> dict[str, int | float]:
        """Per endpoint: ``endpoint<i>.calls``, ``.samples``, ``.failures`` (calls that failed and moved on),
        ``.ejections``, ``.readmissions``, and the endpoint backend's own counters under the same prefix."""
        counters: dict[str, int | float] = {}
        for i, e in enumerate(self.endpoints):
            counters.update({f"endpoint{i}.{key}": value for key, value in e.backend.statistics().items()})
            for key in ("calls", "samples", "failures", "ejections", "readmissions"):
                counters[f"endpoint{i}.{key}"] = getattr(e, key)
        return counters

    async def sample(self, request: SampleRequest) -> list[Sample]:
        return (await self.sample_many([request]))[0]

    async def sample_many(self, requests: Sequence[SampleRequest]) -> list[list[Sample]]:
        """The whole call on one endpoint; on a transient failure, the whole call again on another."""
        deadline = self._clock() + self.wait_s
        step = requests[0].prompt if requests else ""
        last: BackendError | None = None
        for _ in range(2 * len(self.endpoints)):
            endpoint = await self._choose(step, deadline, last)
            endpoint.outstanding += 1
            endpoint.calls += 1
            epoch = endpoint.epoch
            try:
                batches = await endpoint.backend.sample_many(requests)
            except BackendError as error:
                if not is_transient(error):
                    raise
                endpoint.failures += 1
                endpoint.last_error = str(error)
                if endpoint.down_until is None and endpoint.epoch == epoch:  # the first to see this outage
                    self._eject(endpoint)
                last = error
                continue
            finally:
                endpoint.outstanding -= 1
            endpoint.failed_in_a_row = 0
            endpoint.samples += sum(len(batch) for batch in batches)
            self._remember(step, endpoint)
            return batches
        assert last is not None
        raise last

    async def _choose(self, step: str, deadline: float, last: BackendError | None) -> _Endpoint:
        """The endpoint for this call: the step's own if it is admitted and not much busier, else the admitted
        one with the fewest calls outstanding. With none admitted, wait for one (at most until ``deadline``)."""
        while True:
            self._probe_due()
            admitted = [e for e in self.endpoints if e.down_until is None]
            if admitted:
                least = min(admitted, key=lambda e: (e.outstanding, e.calls))
                own = self._affinity.get(step)
                return own if own is not None and own.down_until is None and own.outstanding <= least.outstanding + 1 \
                    else least
            now = self._clock()
            if now >= deadline:
                errors = "; ".join(f"{e.label}: {e.last_error}" for e in self.endpoints)
                raise BackendConnectionError(f"all {len(self.endpoints)} endpoints of the pool are down after waiting "
                                             f"{self.wait_s:g} s ({errors})") from last
            due = [e.down_until for e in self.endpoints if e.down_until is not None and not e.probing]
            wake = min([deadline, *due]) - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._readmission().wait(), max(wake, 0.001))

    def _probe_due(self) -> None:
        """Start a background health check of each ejected endpoint whose cooldown is over."""
        now = self._clock()
        for endpoint in self.endpoints:
            if endpoint.down_until is not None and endpoint.down_until <= now and not endpoint.probing:
                endpoint.probing = True
                task = asyncio.get_running_loop().create_task(self._probe(endpoint))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe(self, endpoint: _Endpoint) -> None:
        try:
            probe = getattr(endpoint.backend, "probe", None)
            healthy = True if probe is None else await probe()
        except Exception:
            healthy = False
        finally:
            endpoint.probing = False
        if not healthy:
            self._eject(endpoint)
            return
        endpoint.down_until = None
        endpoint.epoch += 1
        endpoint.readmissions += 1
        self._readmission().set()  # wakes the calls waiting now; the next ones wait on a fresh event
        self._readmitted = None

    def _readmission(self) -> asyncio.Event:
        """This event loop's "an endpoint came back" event (a pool may serve one asyncio.run after another)."""
        loop = asyncio.get_running_loop()
        if self._readmitted is None or self._readmitted[0] is not loop:
            self._readmitted = (loop, asyncio.Event())
        return self._readmitted[1]

    def _eject(self, endpoint: _Endpoint) -> None:
        if endpoint.down_until is None:
            endpoint.ejections += 1
        endpoint.failed_in_a_row += 1
        wait = min(self.max_cooldown, self.cooldown * 2 ** (endpoint.failed_in_a_row - 1))
        endpoint.down_until = self._clock() + wait

    def _remember(self, step: str, endpoint: _Endpoint) -> None:
        self._affinity[step] = endpoint
        self._affinity.move_to_end(step)
        if len(self._affinity) > self.AFFINITY_SIZE:
            self._affinity.popitem(last=False)

    async def aclose(self) -> None:
        for task in list(self._probes):
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
        errors = []
        for endpoint in self.endpoints:
            try:
                await endpoint.backend.aclose()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]
