"""The backend seam: one async method that returns n samples for one prompt.

Every microagent (simulated, in-process transformers, vLLM, any OpenAI-compatible server) is a
``Backend``. Retries, rate limits and endpoint pools are backends that wrap another backend.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any, Self

from maker.errors import BackendCodeError, BackendError, ConfigError, MakerError
from maker.events import Observer
from maker.samples import FinishReason, Sample, SampleRequest

__all__ = ["Backend", "FinishReason", "Sample", "SampleRequest", "check_backend", "draw"]

class Backend:
    """Base class of all backends. Subclasses implement ``sample``. ``sample_many`` lets a backend batch
    the requests that belong together (a step's greedy first vote and its sampled others); by default
    they run concurrently."""

    name: str = "backend"  #: short name shown in summaries and journals
    simulated: bool = False  #: True only for backends whose replies are made up from the task's oracle
    batches: bool = False  #: True when ``sample_many`` serves its requests as one batch (not one call each)

    async def sample(self, request: SampleRequest) -> list[Sample]:
        raise NotImplementedError

    async def sample_many(self, requests: Sequence[SampleRequest]) -> list[list[Sample]]:
        if len(requests) == 1:
            return [await self.sample(requests[0])]
        # A task group cancels the other requests as soon as one fails.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.sample(r)) for r in requests]
        except BaseExceptionGroup as group_error:
            first = group_error.exceptions[0]
            raise first from first.__cause__
        return [t.result() for t in tasks]

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in a journal header (never secrets)."""
        return {"name": self.name, "simulated": self.simulated}

    def statistics(self) -> dict[str, int | float]:
        """Counters of what the backend has done (JSON-able). A wrapper adds its own keys to its
        inner backend's (``RetryingBackend``: ``retries``)."""
        return {}

    def observer(self) -> Observer | None:
        """An observer of the run, for a backend that must see it: only the simulated one, which answers
        from the task's oracle and so learns each prompt's state from events. A real one sees only requests."""
        return None

    async def aclose(self) -> None:
        """Release sessions, processes or models. Safe to call twice."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def check_backend(backend: Any) -> None:
    """Refuse, before any work, an object that cannot serve as a backend: not a ``Backend``, no ``sample``, or
    a ``sample`` / ``sample_many`` that is not ``async def``. The error names the class and says what to write."""
    kind = type(backend).__name__
    if not isinstance(backend, Backend):
        raise ConfigError(f"{kind} is not a maker backend: subclass maker.Backend and define "
                          "`async def sample(self, request)` returning a list of maker.Sample (docs/tasks.md)")
    overridden = [name for name in ("sample", "sample_many") if getattr(type(backend), name) is not getattr(Backend, name)]
    if not overridden:
        raise ConfigError(f"backend {kind} defines no sample method: write `async def sample(self, request)` "
                          "returning a list of maker.Sample")
    for name in overridden:
        if not inspect.iscoroutinefunction(getattr(type(backend), name)):
            raise ConfigError(f"backend {kind}.{name} must be a coroutine (`async def {name}(...)`)")


async def draw(backend: Backend, requests: Sequence[SampleRequest], *, step: int | None = None) -> list[Sample]:
    """The samples of ``backend.sample_many(requests)``, all requests' in order, checked: one list of ``Sample``
    per request. The engine and estimation call backends only through here, so a backend's failure names it (and
    the step), and a backend that breaks the protocol gets a ``BackendCodeError`` saying what it returned."""
    try:
        batches = await backend.sample_many(requests)
    except BackendError as error:
        if error.step is None:
            error.step = step
        raise
    except MakerError:
        raise
    except Exception as exc:
        raise _code_error(backend, step, f"raised {type(exc).__name__}: {exc}") from exc
    if batches.__class__ is not list or len(batches) != len(requests):
        size = f" of {len(batches)}" if isinstance(batches, (list, tuple)) else ""
        raise _code_error(backend, step, f"returned a {type(batches).__name__}{size} from sample_many, not a list of "
                                         f"{len(requests)} lists (one list of maker.Sample per request)")
    samples: list[Sample] = []
    for request, batch in zip(requests, batches, strict=True):
        if batch.__class__ is not list and not isinstance(batch, list):
            raise _code_error(backend, step, f"returned a {type(batch).__name__} ({batch!r:.60}) from sample, not a list "
                                             "of maker.Sample")
        if len(batch) != request.n:  # who drew which sample (a mix of agents) goes by these counts
            raise _code_error(backend, step, f"returned {len(batch)} samples for a request of n = {request.n}")
        samples += batch
    if not samples:
        raise _code_error(backend, step, f"returned no samples for {len(requests)} request(s)")
    for sample in samples:
        if sample.__class__ is not Sample and not isinstance(sample, Sample):
            raise _code_error(backend, step, f"returned a list holding a {type(sample).__name__} ({sample!r:.60}), not "
                                             "maker.Sample")
    return samples


def _code_error(backend: Backend, step: int | None, what: str) -> Exception:
    error = BackendCodeError(f"{'' if step is None else f'step {step}: '}backend {backend.name!r} "
                             f"({type(backend).__name__}) {what}")
    error.step = step
    return error
