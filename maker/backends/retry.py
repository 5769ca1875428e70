"""``RetryingBackend``, which retries another backend's transient failures with capped exponential backoff.

Retried: ``BackendTimeout``, ``BackendConnectionError``, ``BackendResponseError`` and
``BackendHTTPError`` with status 429 or 5xx. Everything else (other 4xx: a bad request or key will
not get better; non-backend errors: bugs) propagates at once, unchanged.

The wait before retry ``i`` (1, 2, ...) is drawn uniformly from
``[0, min(max_delay, base_delay * 2 ** (i - 1))]`` ("full jitter"), so that many clients that
failed together do not come back together. Attempts stop at ``max_attempts``, or when the next
wait would end past ``max_total_s`` after the first attempt began; an attempt already under way is
bounded by the inner backend's own timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from maker.backends.base import Backend, Sample, SampleRequest
from maker.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    BackendTimeout,
    ConfigError,
)
from maker.events import Observer

_T = TypeVar("_T")
_RETRIED = (BackendTimeout, BackendConnectionError, BackendResponseError, BackendHTTPError)


def is_transient(error: BaseException) -> bool:
    """Whether trying the same request again may succeed."""
    if isinstance(error, BackendHTTPError):
        return error.status == 429 or error.status >= 500
    return isinstance(error, _RETRIED)


class RetryingBackend(Backend):
    """Wraps a backend and retries its transient failures.

    >>> from maker import load_task, run, SimulatedBackend
    >>> task = load_task("hanoi", disks=3)
    >>> backend = RetryingBackend(SimulatedBackend(task), max_attempts=4)
    >>> run(task, backend, k=2).solved, backend.retries
    (True, 0)
    """

    def __init__(self, inner: Backend, *, max_attempts: int = 8, max_total_s: float = 600.0, base_delay: float = 0.5,
                 max_delay: float = 30.0, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if max_attempts < 1 or max_total_s < 0 or base_delay < 0 or max_delay < 0:
            raise ConfigError(f"need max_attempts >= 1 and non-negative times "
                              f"(got {max_attempts}, {max_total_s}, {base_delay}, {max_delay})")
        self.inner = inner
        # Summaries and journals name the backend that makes the samples, not the wrapper.
        self.name, self.simulated, self.batches = inner.name, inner.simulated, inner.batches
        self.max_attempts, self.max_total_s = max_attempts, max_total_s
        self.base_delay, self.max_delay = base_delay, max_delay
        self.retries = 0  # attempts after a first one, over this backend's life
        self._sleep, self._rng, self._clock = sleep, rng or random.Random(), clock

    def describe(self) -> dict[str, Any]:
        keys = ("max_attempts", "max_total_s", "base_delay", "max_delay", "retries")
        return {**self.inner.describe(), "retry": {key: getattr(self, key) for key in keys}}

    async def sample(self, request: SampleRequest) -> list[Sample]:
        return await self._retry(lambda: self.inner.sample(request))

    async def sample_many(self, requests: Sequence[SampleRequest]) -> list[list[Sample]]:
        if not self.inner.batches:
            # Each request is its own call (as over HTTP): retry each on its own, so one failure
            # does not throw away the others' samples.
            return await super().sample_many(requests)
        # A batching backend gets the batch whole; a failure retries the whole batch.
        return await self._retry(lambda: self.inner.sample_many(requests))

    def statistics(self) -> dict[str, int | float]:
        return {**self.inner.statistics(), "retries": self.retries}

    def observer(self) -> Observer | None:
        return self.inner.observer()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _retry(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        start = self._clock()
        for number in range(1, self.max_attempts + 1):
            try:
                return await attempt()
            except BackendError as error:
                if not is_transient(error):
                    raise
                last = error
            if number == self.max_attempts:
                break
            delay = self._rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (number - 1)))
            if self._clock() + delay - start > self.max_total_s:
                break
            self.retries += 1
            await self._sleep(delay)
        raise _gave_up(last, number, self._clock() - start) from last


def _gave_up(last: BackendError, attempts: int, seconds: float) -> BackendError:
    """An error of the same kind as ``last`` (callers may catch BackendTimeout etc.), saying so."""
    message = f"gave up after {attempts} attempt{'s' * (attempts != 1)} over {seconds:.1f} s: {last}"
    if isinstance(last, BackendHTTPError):
        return BackendHTTPError(message, status=last.status)
    kind = next(k for k in (BackendTimeout, BackendConnectionError, BackendResponseError) if isinstance(last, k))
    return kind(message)
