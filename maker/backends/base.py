"""The backend seam: one async method that returns n samples for one prompt.

Every microagent (simulated, in-process transformers, vLLM, any OpenAI-compatible server) is a
``Backend``. Retries, rate limits and endpoint pools are backends that wrap another backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class SampleRequest:
    """What to sample: one prompt, how many replies, and the generation settings."""

    prompt: str
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 750  # generation cap; a reply that hits it comes back with finish "length"
    seed: int | None = None
    # What the prompt was rendered from. Real backends ignore it; the simulated backend reads it
    # to consult the task's oracle. It never reaches voting.
    state: Any = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One reply: its text, how many tokens it took, and why generation stopped."""

    text: str
    tokens: int
    finish_reason: FinishReason = "stop"


class Backend:
    """Base class of all backends. Subclasses implement ``sample``.

    ``sample_many`` exists so that a backend can batch requests that belong together (the greedy
    first vote and the sampled others of one step); the default simply runs them concurrently.
    """

    #: short name shown in summaries and journals
    name: str = "backend"
    #: True only for backends whose replies are made up from the task's oracle
    simulated: bool = False

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

    async def aclose(self) -> None:
        """Release sessions, processes or models. Safe to call twice."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
