"""The Task protocol: what a user writes to have maker carry out a long process.

A task is a handful of plain (non-async) methods: ``initial_state``, ``prompt``, ``parse``, ``apply`` and
``is_done`` are required; ``check``, ``oracle``, ``total_steps``, ``format_reply``, ``plausible_mistake``,
``candidate_to_json`` / ``candidate_from_json``, ``agent`` and ``run_defaults`` are optional. The candidate
``parse`` returns is the vote key, so it must be hashable and canonical: two replies that mean the same
thing must parse to equal candidates. The oracle (ground truth) is only for the simulated backend,
estimation and after-the-fact verification, never voting.
"""

from __future__ import annotations

import json
import random
from collections.abc import Hashable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from maker.errors import TaskParameterError


class NoParams(BaseModel):
    """Parameters of a task that takes none."""

    model_config = ConfigDict(extra="forbid")


class Task:
    """Base class for tasks. Subclass it, set ``name`` and ``Params``, and fill in the methods.

    >>> from pydantic import BaseModel
    >>> class Countdown(Task):
    ...     name = "countdown"
    ...     class Params(BaseModel):
    ...         start: int = 3
    ...     def initial_state(self): return self.params.start
    ...     def prompt(self, state): return f"What is {state} minus one? Answer with a number."
    ...     def parse(self, state, reply):
    ...         if not reply.strip().lstrip("-").isdigit(): raise RedFlag("not a number")
    ...         return int(reply)
    ...     def apply(self, state, candidate): return candidate
    ...     def is_done(self, state): return state == 0
    >>> Countdown(start=2).initial_state()
    2
    """

    #: the name used in summaries and journals
    name: ClassVar[str] = "task"
    #: pydantic model of the task's parameters; a subclass sets its own
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(self.Params, params, task=self.name)

    # --- required -----------------------------------------------------------------------------
    def initial_state(self) -> Any:
        raise NotImplementedError

    def prompt(self, state: Any) -> str:
        raise NotImplementedError

    def parse(self, state: Any, reply: str) -> Hashable:
        """Return the canonical candidate in ``reply``, or raise ``RedFlag``. Never repair."""
        raise NotImplementedError

    def apply(self, state: Any, candidate: Any) -> Any:
        raise NotImplementedError

    def is_done(self, state: Any) -> bool:
        raise NotImplementedError

    # --- optional -----------------------------------------------------------------------------
    #: tasks that implement ``check`` set this to True
    has_check: ClassVar[bool] = False

    def check(self, state: Any, candidate: Any) -> None:
        """Answer-free validity rules: raise ``RedFlag(..., RedFlagReason.INVALID)`` on a breach.

        Uses only the task's rules, never the oracle; the engine may apply it as a red flag.
        """

    def oracle(self, state: Any) -> Any:
        """The correct candidate for ``state``. Never used by voting or red flags."""
        raise NotImplementedError(f"task {self.name!r} has no oracle")

    @property
    def has_oracle(self) -> bool:
        return type(self).oracle is not Task.oracle

    #: the microagent that serves this task's steps (a model, adapter or served-model name in the
    #: backend's table); None: the backend's default. A run can override it.
    agent: str | None = None

    def run_defaults(self) -> dict[str, Any]:
        """Run settings this task's replies call for, e.g. ``{"max_tokens": 120}`` for a
        red-flag limit that suits their length. Layered by ``maker.config.resolve_config``."""
        return {}

    def total_steps(self) -> int | None:
        """Number of steps of a correct run, when known in advance."""
        return None

    def format_reply(self, state: Any, candidate: Any) -> str:
        """The reply a perfect model would write for ``candidate`` (simulation, training data)."""
        raise NotImplementedError(f"task {self.name!r} cannot format replies")

    def plausible_mistake(self, state: Any, candidate: Any, rng: random.Random) -> Any:
        """A wrong but well-formed candidate, of the kind a model would produce (simulation)."""
        raise NotImplementedError(f"task {self.name!r} cannot make up mistakes")

    def candidate_to_json(self, candidate: Any) -> Any:
        return _jsonable(candidate)

    def candidate_from_json(self, data: Any) -> Any:
        return _hashable(data)

    def encode_candidate(self, candidate: Any) -> str:
        """The candidate's JSON text in the journal. Override only to make journalling faster."""
        return _encode(self.candidate_to_json(candidate))

    def describe(self) -> dict[str, Any]:
        described = {"task": self.name, "params": self.params.model_dump(mode="json")}
        spec = getattr(self, "spec", None)
        if spec is not None and spec != self.name:
            described["spec"] = spec
        return described


def oracle_disagrees(task: Task, state: Any, candidate: Any) -> bool:
    """Whether the oracle's answer for ``state`` differs from ``candidate``: the one comparison
    behind every error count (statistics, ``maker verify``, estimation). After the fact only.
    An oracle that raises (a wrong step led where it has no answer) counts as disagreeing."""
    try:
        return task.oracle(state) != candidate
    except Exception:
        return True


def validate_params(model: type[BaseModel], params: dict[str, Any], *, task: str) -> BaseModel:
    """Validate ``params`` against ``model``; errors name each offending parameter."""
    try:
        return model(**params)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" else "")
            for err in exc.errors()
        )
        raise TaskParameterError(f"invalid parameters for task {task!r}: {problems}") from None


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value
