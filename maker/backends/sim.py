"""The simulated backend: a seeded, noisy microagent built on the task's oracle.

SIMULATED: its replies are made up from the task's ground truth, so it measures the engine, not a
model. Every summary and journal of a run that uses it says ``"simulated": true``.

Each sample is, independently: with probability ``malformed_rate`` a reply the task's parser must
reject; else with ``too_long_rate`` a rambling reply cut off at ``max_tokens``; else with
``error_rate`` a plausible wrong answer (``Task.plausible_mistake``); else the correct reply.
A greedy request (temperature 0) is deterministic per prompt: the same prompt gets the same first
sample, as with a real model.

Correlated errors: a ``hard_fraction`` of prompts (chosen by hashing the prompt) are hard; on a
hard prompt one specific wrong answer, the same for every sample, appears with probability
``hard_error_rate``. This is the failure mode voting alone cannot fix.

Requests carry only a prompt, as for a real model: the simulator learns which chain's task and
state each prompt was rendered from by observing the run (``step_started``), and keeps the oracle
to itself.
"""

from __future__ import annotations

import random
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from maker.backends.base import Backend, Sample, SampleRequest
from maker.errors import ConfigError
from maker.events import ChainInfo, Observer
from maker.task import Task

_CHARS_PER_TOKEN = 4  # a rough token count for made-up text; real backends report exact counts
_REMEMBERED = 1 << 16  # prompts whose state is kept: far more than steps in flight at once


class SimulatedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.01, ge=0.0, le=1.0, description="share of samples that are a plausible wrong answer")
    malformed_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of samples the parser must reject")
    too_long_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of samples that ramble past max_tokens")
    hard_fraction: float = Field(0.0, ge=0.0, le=1.0, description="share of prompts with a correlated error")
    hard_error_rate: float = Field(0.5, ge=0.0, le=1.0, description="chance of the shared wrong answer on a hard prompt")
    seed: int = 0


class SimulatedBackend(Backend, Observer):
    """A noisy oracle posing as a microagent (SIMULATED).

    >>> from maker import load_task, run
    >>> task = load_task("hanoi", disks=4)
    >>> result = run(task, SimulatedBackend(task, error_rate=0.1, seed=1), k=3)
    >>> result.solved, result.errors
    (True, 0)
    """

    name = "sim"
    simulated = True
    batches = True

    def __init__(self, task: Task, **settings: Any) -> None:
        missing = [m for m in ("oracle", "format_reply", "plausible_mistake") if getattr(type(task), m) is getattr(Task, m)]
        if missing:
            raise ConfigError(f"the simulated backend needs the task to implement {', '.join(missing)}; {task.name!r} does not")
        self.task = task
        # prompt -> (the chain's task, the state). An OrderedDict: dropping a plain dict's oldest key scans the
        # deleted slots before it (next(iter(...))), which made a million-step run twice as slow.
        self._states: OrderedDict[str, tuple[Task, Any]] = OrderedDict()
        self.config = SimulatedConfig(**settings)
        self._rng = random.Random(self.config.seed)
        self._salt = self.config.seed & 0xFFFFFFFF
        # The correct reply of the most recent prompt: all samples of a step share it.
        self._last_prompt: str | None = None
        self._last_truth: tuple[Any, Sample] | None = None
        self._malformed = ["I think the next move is disk 1 to peg 2.", "move = [1, 0]\nnext_state = [[2], [], [1]]",
                           "move = [1, 0, 2]\nnext_state = [[2, 3], [", ""]
        self._rambling = "Let me think about this step by step. " * 200

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "simulated": True, **self.config.model_dump()}

    def observer(self) -> Observer:
        return self

    def step_started(self, chain: ChainInfo, step: int, state: Any, prompt: str) -> None:
        states = self._states
        states[prompt] = (chain.task, state)
        if len(states) > _REMEMBERED:
            states.popitem(last=False)  # the oldest: its step was decided long ago

    def step_escalated(self, chain: ChainInfo, step: int, state: Any, rung: str, prompt: str) -> None:
        self.step_started(chain, step, state, prompt)  # a reworded prompt asks about the same state

    async def sample(self, request: SampleRequest) -> list[Sample]:
        return self._sample(request)

    async def sample_many(self, requests: Sequence[SampleRequest]) -> list[list[Sample]]:
        return [self._sample(r) for r in requests]

    def _source(self, prompt: str) -> tuple[Task, Any]:
        """The task and state the prompt was rendered from, as observed."""
        try:
            return self._states[prompt]
        except KeyError:
            raise ConfigError("the simulated backend answers only prompts of a run that it observes (maker.run, or "
                              "run_async; a backend that wraps this one must forward observer()): this prompt was "
                              "never rendered") from None

    def _truth(self, request: SampleRequest) -> tuple[Any, Sample]:
        """The correct candidate and reply for the request's state, computed once per prompt."""
        if request.prompt is not self._last_prompt:
            task, state = self._source(request.prompt)
            try:
                candidate = task.oracle(state)
                reply = self._reply(task.format_reply(state, candidate))
            except Exception:  # an earlier wrong step led somewhere the oracle has no answer for
                candidate, reply = None, self._reply("I am not sure what the rules allow here.")
            self._last_truth, self._last_prompt = (candidate, reply), request.prompt
        return self._last_truth  # type: ignore[return-value]

    def _sample(self, request: SampleRequest) -> list[Sample]:
        if request.temperature == 0.0:
            # Greedy: one fixed draw per prompt, so repeated greedy calls agree. The first uniform
            # comes from a hash of the prompt; a generator is only built if it is needed.
            h = zlib.crc32(request.prompt.encode(), self._salt)
            fixed = lambda: random.Random(h)  # noqa: E731 (made once a request, not once a sample)
            return [self._draw(request, h / 4294967296.0, fixed) for _ in range(request.n)]
        rng = self._rng
        shared = lambda: rng  # noqa: E731
        return [self._draw(request, rng.random(), shared) for _ in range(request.n)]

    def _draw(self, request: SampleRequest, u: float, get_rng: Callable[[], random.Random]) -> Sample:
        """One sample, given a uniform ``u`` that picks its kind."""
        cfg = self.config
        if u < cfg.malformed_rate:
            return self._reply(get_rng().choice(self._malformed))
        u -= cfg.malformed_rate
        if u < cfg.too_long_rate:
            return Sample(self._rambling, request.max_tokens, "length")
        u -= cfg.too_long_rate
        if cfg.hard_fraction > 0.0 and self._is_hard(request.prompt) and get_rng().random() < cfg.hard_error_rate:
            return self._reply(self._shared_mistake(request), request.max_tokens)
        candidate, truth = self._truth(request)
        if u < cfg.error_rate and candidate is not None:
            task, state = self._source(request.prompt)
            wrong = task.plausible_mistake(state, candidate, get_rng())
            return self._reply(task.format_reply(state, wrong), request.max_tokens)
        return truth

    @staticmethod
    def _reply(text: str, max_tokens: int = 1 << 30) -> Sample:
        tokens = len(text) // _CHARS_PER_TOKEN + 1
        return Sample(text, max_tokens, "length") if tokens > max_tokens else Sample(text, tokens, "stop")

    def _is_hard(self, prompt: str) -> bool:
        h = zlib.crc32(prompt.encode(), 0x9E3779B9 ^ self._salt)
        return h / 0xFFFFFFFF < self.config.hard_fraction

    def _shared_mistake(self, request: SampleRequest) -> str:
        candidate, truth = self._truth(request)
        if candidate is None:
            return truth.text
        rng = random.Random(zlib.crc32(request.prompt.encode(), 0x85EBCA6B ^ self._salt))
        task, state = self._source(request.prompt)
        return task.format_reply(state, task.plausible_mistake(state, candidate, rng))
