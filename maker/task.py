"""The Task protocol: what a user writes to have maker carry out a long process.

A task is a handful of plain (non-async) methods: ``initial_state``, ``prompt``, ``parse``, ``apply`` and
``is_done`` are required; ``check``, ``oracle``, ``total_steps``, ``format_reply``, ``plausible_mistake``, ``training_states``,
``candidate_to_json`` / ``candidate_from_json``, ``answer``, ``kind``, ``agent`` and ``run_defaults`` are optional. The candidate
``parse`` returns is the vote key, so it must be hashable and canonical: two replies that mean the same
thing must parse to equal candidates. The oracle (ground truth) is only for the simulated backend,
estimation and after-the-fact verification, never voting.
"""

from __future__ import annotations

import difflib
import json
import random
from collections.abc import Hashable, Iterator
from os import PathLike
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from maker.errors import ConfigError, RedFlag, StepError, TaskError, TaskParameterError


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
        check_task_class(type(self))
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
    @property
    def has_check(self) -> bool:
        """Whether the task defines ``check`` (a subclass may still set ``has_check = False``)."""
        return type(self).check is not Task.check

    def check(self, state: Any, candidate: Any) -> None:
        """Answer-free validity rules: raise ``RedFlag(..., RedFlagReason.INVALID)`` on a breach.

        Uses only the task's rules, never the oracle; the engine may apply it as a red flag.
        """

    def draft(self, state: Any, reply: str) -> str | None:
        """A guess at how ``reply`` (a model's reply to ``state`` so far) goes on, or None.

        Backends that draft (``hf``) feed the guess to the model with the reply and keep only the
        tokens the model would have written itself: a good guess makes replies faster, a bad one
        costs a little time, and neither changes a reply. Guess from the state and the reply, never
        from the oracle: e.g. the next state once the reply has named its move."""
        return None

    @property
    def has_draft(self) -> bool:
        return type(self).draft is not Task.draft

    def oracle(self, state: Any) -> Any:
        """The correct candidate for ``state``. Never used by voting or red flags."""
        raise NotImplementedError(f"task {self.name!r} has no oracle")

    @property
    def has_oracle(self) -> bool:
        return type(self).oracle is not Task.oracle

    #: the microagent that serves this task's steps (a model, adapter or served-model name in the
    #: backend's table); None: the backend's default. A run can override it.
    agent: str | None = None
    #: the model folder that serves this task's agents when a run names no other (``maker.agents.task_catalog``;
    #: ``maker run``'s default backend is in process when it exists); None: the task ships none
    default_model: ClassVar[str | PathLike[str] | None] = None
    #: several microagents that draw this task's samples in turn, e.g. ``("specialist", "adapter")``
    #: (``maker.mixing``: sample i of a step comes from entry i mod its length); None: ``agent`` alone.
    #: A run's mix overrides it.
    mix: tuple[str, ...] | None = None

    def plan(self, depth: int) -> Any:
        """This task cut ``depth`` levels deep into a ``maker.Plan`` of chains (``maker.planner``): chains
        whose dependencies are done run concurrently. Define it to let runs take ``depth`` > 0."""
        raise NotImplementedError(f"task {self.name!r} has no planner (a plan(depth) method)")

    @property
    def has_plan(self) -> bool:
        return type(self).plan is not Task.plan

    def kind(self, state: Any) -> str | None:
        """The kind of step ``state`` asks for, when a task has several (multiplication: ``"product"`` or
        ``"sum"``; Hanoi: which disk moves). From the state and the task's rules only, never the oracle:
        a run may vote each kind with its own k (``RunConfig.k_by_kind``). Statistics and estimates are
        reported per kind, the journal records it, and a few-shot prompt shows examples of the same kind
        (``maker.prompting``). A short name without spaces or ``=`` or ``,`` (it is written on command lines).
        None: one kind."""
        return None

    @property
    def has_kinds(self) -> bool:
        return type(self).kind is not Task.kind

    def paraphrase(self, state: Any, variant: int) -> str | None:
        """``state``'s prompt reworded, variant ``variant`` (1, 2, ...): the same question, with the same reply
        format and the same answer, in other words. None: no such variant (variant 1 must exist when the task
        defines this). The escalation ladder's first rung asks a hard step through them (``maker.escalation``):
        a model's errors tied to one wording need not follow another."""
        return None

    @property
    def has_paraphrase(self) -> bool:
        return type(self).paraphrase is not Task.paraphrase

    #: every kind ``kind`` can return, when the task knows them: a run's ``k_by_kind`` naming another is
    #: refused. None: not declared (any name is accepted).
    kind_names: ClassVar[tuple[str, ...] | None] = None

    def run_defaults(self) -> dict[str, Any]:
        """Run settings this task's replies call for, e.g. ``{"max_tokens": 120}`` for a
        red-flag limit that suits their length. Layered by ``maker.config.resolve_config``."""
        return {}

    def total_steps(self) -> int | None:
        """Number of steps of a correct run, when known in advance: a cap (a run stops there) and a
        check (a run that reaches ``is_done`` at any other step is not solved). None: unknown; a run
        then stops at ``maker.scheduler.DEFAULT_STEP_CAP`` unless given ``max_steps``."""
        return None

    def answer(self, state: Any) -> Any:
        """What a user wants to see of the final state (``maker run`` prints it; ``--json`` has it
        as ``"answer"``): the closing balances, the sorted list. Default: the state itself."""
        return state

    def training_states(self, rng: random.Random, count: int) -> list[Any]:
        """States that ``maker train`` makes examples of, each paired with ``format_reply`` of the
        oracle's answer. Default: ``count`` states drawn at random along the oracle's trajectory of
        this instance (``trajectory_sample``). Override it to train beyond one instance (other sizes,
        other inputs) or to oversample rare, hard states. Never used by a run."""
        return trajectory_sample(self, rng, count)

    def format_reply(self, state: Any, candidate: Any) -> str:
        """The reply a perfect model would write for ``candidate`` (simulation, training data)."""
        raise NotImplementedError(f"task {self.name!r} cannot format replies")

    def plausible_mistake(self, state: Any, candidate: Any, rng: random.Random) -> Any:
        """A wrong but well-formed candidate, of the kind a model would produce (simulation)."""
        raise NotImplementedError(f"task {self.name!r} cannot make up mistakes")

    def candidate_to_json(self, candidate: Any) -> Any:
        """The candidate as JSON data for the journal. The default writes tuples as lists; override it
        (with ``candidate_from_json``) for candidates JSON cannot hold: sets, named tuples, objects."""
        return _jsonable(candidate)

    def candidate_from_json(self, data: Any) -> Any:
        """The candidate back from ``candidate_to_json``'s data (resume, ``maker verify``). The default
        turns lists into tuples and objects into sorted tuples of pairs."""
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


# What every chain's task needs; a task run on its own (not only as a plan's subtask) also needs initial_state.
REQUIRED_METHODS = ("prompt", "parse", "apply", "is_done")


def check_task_class(cls: type, *, standalone: bool = False) -> None:
    """Raise TaskError unless ``cls`` is a Task subclass that defines every required method."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TaskError(f"{cls!r} is not a task: subclass maker.Task")
    required = ("initial_state", *REQUIRED_METHODS) if standalone else REQUIRED_METHODS
    missing = [name for name in required if getattr(cls, name, None) is getattr(Task, name)]
    if missing:
        raise TaskError(f"task class {cls.__qualname__!r} does not define {', '.join(missing)}: every task needs "
                        f"{', '.join(required)} (docs/tasks.md)")


def journal_round_trip(task: Task, candidate: Any) -> str | None:
    """Why ``candidate`` does not come back from the journal's JSON encoding as itself (same value and
    type), or None. Checked on a chain's first decision and by ``maker check-task``."""
    try:
        back = task.candidate_from_json(json.loads(task.encode_candidate(candidate)))
    except Exception as exc:
        return f"encoding it raised {type(exc).__name__}: {exc}"
    if not _same(back, candidate):
        return f"it comes back as {back!r} ({type(back).__name__}), not {candidate!r} ({type(candidate).__name__})"
    return None


JOURNAL_HINT = ("candidates are journalled as JSON: return ints, strings and tuples of them from parse, or define "
                "candidate_to_json / candidate_from_json on the task (docs/tasks.md)")


def rule_violation(task: Task, state: Any, candidate: Any, *, step: int = 0) -> RedFlag | None:
    """The ``RedFlag`` that ``candidate`` raises under the task's answer-free rules (``Task.check``), or None.
    The one place ``check`` is applied: as a red flag by ``RedFlagJudge`` when a run's checks are on, after
    the fact by the statistics (``rule_violations``) when they are off, and by ``maker verify``. A check that
    raises anything else is a ``StepError`` naming the step, with checks on or off."""
    try:
        task.check(state, candidate)
    except RedFlag as flag:
        return flag
    except Exception as exc:
        raise StepError(f"task.check raised {type(exc).__name__}: {exc} for candidate {candidate!r:.200} (it must "
                        "raise maker.RedFlag to reject a candidate)", step=step, state=state) from exc
    return None


def oracle_fault(task: Task, state: Any) -> str | None:
    """Why the oracle's own answer for ``state`` breaks the task's check, or None (no check, no
    answer, or it passes). A broken oracle must not make a correct run count errors."""
    if not task.has_check:
        return None
    try:
        expected = task.oracle(state)
    except Exception:
        return None
    broken = rule_violation(task, state, expected)
    return None if broken is None else f"the oracle's answer {expected!r} breaks the check: {broken.detail or broken.reason.value}"


def oracle_disagrees(task: Task, state: Any, candidate: Any) -> bool:
    """Whether the oracle's answer for ``state`` differs from ``candidate``: the one comparison
    behind every error count (statistics, ``maker verify``, estimation). After the fact only.
    An oracle that raises (a wrong step led where it has no answer) counts as disagreeing."""
    try:
        return task.oracle(state) != candidate
    except Exception:
        return True


TRAJECTORY_CAP = 2_000_000  # trajectory_sample walks at most this many oracle steps


_INITIAL = object()  # OracleWalk's default start: the task's initial_state()


class OracleWalk:
    """The oracle's trajectory of a task, walked once: iterating gives ``(step, state, candidate)`` from the
    initial state (or ``start``) until ``is_done`` or ``limit`` steps; afterwards ``steps`` says how many were walked,
    ``state`` is the last state reached and ``done`` whether ``is_done`` ended the walk. The one walk behind
    estimation's states, training's default states and ``maker check-task``. A task method that raises
    ends it with a ``WalkError`` naming the method, the step and the state. Never used by a run.
    """

    def __init__(self, task: Task, limit: int | None = None, *, start: Any = _INITIAL) -> None:
        self.task, self.limit, self.start = task, limit, start  # start: a chain's own start state (a plan's, a solve's)
        self.steps, self.state, self.done = 0, None, False

    def __iter__(self) -> Iterator[tuple[int, Any, Any]]:
        task, where = self.task, "initial_state"
        self.steps, self.done = 0, False
        try:
            self.state = task.initial_state() if self.start is _INITIAL else self.start
            while True:
                where = "is_done"
                if task.is_done(self.state):
                    self.done = True
                    return
                if self.limit is not None and self.steps >= self.limit:
                    return
                where = "oracle"
                candidate = task.oracle(self.state)
                yield self.steps, self.state, candidate
                where = "apply"
                self.state = task.apply(self.state, candidate)
                self.steps += 1
        except Exception as exc:
            raise WalkError(where, self.steps, self.state, exc) from exc


class WalkError(TaskError):
    """A task method raised on the oracle's trajectory: ``where`` (the method), at ``step``, in ``state``."""

    def __init__(self, where: str, step: int, state: Any, cause: Exception) -> None:
        at = f"at step {step}" + ("" if where == "initial_state" else f" (state {state!r:.200})")
        super().__init__(f"the oracle's trajectory failed: task.{where} raised {type(cause).__name__}: {cause} {at}")
        self.where, self.step, self.state = where, step, state


def trajectory_sample(task: Task, rng: random.Random, count: int) -> list[Any]:
    """``count`` states drawn uniformly (with repeats only when the trajectory is shorter) from the oracle's
    trajectory of ``task`` (at most ``TRAJECTORY_CAP`` steps): the default of ``Task.training_states``."""
    if not task.has_oracle:
        raise ConfigError(f"task {task.name!r} has no oracle: train it from verified journals (--from-journal)")
    walked = [state for _, state, _ in OracleWalk(task, min(task.total_steps() or TRAJECTORY_CAP, TRAJECTORY_CAP))]
    if not walked:
        raise TaskError(f"task {task.name!r} is done at its initial state: there is nothing to train on")
    if count <= len(walked):
        return rng.sample(walked, count)
    return [rng.choice(walked) for _ in range(count)]


def validate_params(model: type[BaseModel], params: dict[str, Any], *, task: str) -> BaseModel:
    """Validate ``params`` against ``model``; errors name each offending parameter."""
    fields = model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    unknown = [name for name in params if name not in known]
    if unknown and model.model_config.get("extra") != "allow":
        flag = _flag
        hints = [flag(name) + "".join(f" (did you mean {flag(m)}?)" for m in difflib.get_close_matches(name, known, 1))
                 for name in unknown]
        raise TaskParameterError(f"invalid parameters for task {task!r}: unknown {', '.join(hints)}; its parameters "
                                 f"are: {', '.join(map(flag, fields)) or 'none'}")
    try:
        return model(**params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_flag('.'.join(str(p) for p in err['loc']))}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" else "")
            for err in exc.errors()
        )
        raise TaskParameterError(f"invalid parameters for task {task!r}: {problems}") from None


def _flag(name: str) -> str:
    """A parameter as the command line spells it (also used in errors from Python)."""
    return "--" + name.replace("_", "-")


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_data(value: Any) -> Any:
    """``value`` as JSON data: sequences as lists, mappings as objects, anything else JSON cannot hold as its repr."""
    return json.loads(json.dumps(_jsonable(value), default=repr))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (a named tuple is == its plain tuple, but is not it)."""
    if type(a) is not type(b) or a != b:
        return False
    if isinstance(a, (tuple, list)):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return all(_same(a[key], b[key]) for key in a)
    return True


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value
