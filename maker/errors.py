"""The exceptions maker raises, as one tree.

    MakerError
    ├── TaskError                 a task's code or parameters misbehaved
    │   ├── TaskParameterError    a task parameter failed validation (names the parameter)
    │   └── StepError             task code raised, or a candidate could not be applied
    ├── StepFailed                a step hit its sample cap without a decision
    ├── BackendError              a backend could not produce samples
    │   ├── BackendTimeout
    │   ├── BackendConnectionError
    │   ├── BackendHTTPError      (status code kept)
    │   ├── BackendResponseError  the server answered with something unusable
    │   └── BackendCodeError      a backend's own code raised or broke the protocol (a bug: rerunning will not help)
    ├── JournalError              a journal is unreadable, foreign or corrupt
    └── ConfigError               a run setting is invalid

Beside the tree, and not errors of maker's: ``RedFlag``, which a task's ``parse`` or ``check`` raises to
discard a reply, its closed set of reasons ``RedFlagReason``, and ``Flagged``, a discarded reply.

Third-party exceptions are translated at the boundary (``raise BackendTimeout(...) from exc``), so
callers only ever need to catch ``MakerError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class MakerError(Exception):
    """Base class of every error maker raises on purpose; one that ends a run carries ``statistics``
    (the run's counters when it stopped)."""

    statistics: Any = None


class ConfigError(MakerError, ValueError):
    """A run setting is invalid (k < 1, an unknown rule, a negative cap, ...)."""


class TaskError(MakerError):
    """A task's code or parameters misbehaved."""


class TaskParameterError(TaskError, ValueError):
    """A task parameter failed validation; the message names the parameter."""


class StepError(TaskError):
    """Task code raised while handling a step, or the winning candidate could not be applied."""

    def __init__(self, message: str, *, step: int, state: Any = None) -> None:
        super().__init__(f"step {step}: {message} (state: {short_repr(state)})")
        self.step = step
        self.state = state


class StepFailed(MakerError):
    """A step drew its maximum number of samples without any candidate winning the vote. The message
    shows the vote counts and, when replies were discarded, the red flags by reason with examples."""

    def __init__(self, *, step: int, samples: int, counts: Mapping[Any, int], red_flags: int,
                 flag_reasons: Mapping[str, int] | None = None, examples: Sequence[Any] = (),
                 escalated: Sequence[str] = ()) -> None:
        shown = ", ".join(f"{short_repr(c)}: {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])[:5])
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted((flag_reasons or {}).items(), key=lambda kv: -kv[1]))
        lines = [f"step {step}: no decision after {samples} samples (the per-step cap); {red_flags} red-flagged"
                 + (f" ({reasons})" if reasons else "") + f"; vote counts: {{{shown or 'none'}}}"
                 + (f"; it climbed the escalation ladder: {', '.join(escalated)}" if escalated else "")]
        lines += [f"  {flag.reason.value}: {flag.detail or '(no detail)'}; reply: {short_repr(flag.text, 120)}" for flag in examples]
        super().__init__("\n".join(lines))
        self.step = step
        self.samples = samples
        self.counts = dict(counts)
        self.red_flags = red_flags
        self.flag_reasons = dict(flag_reasons or {})
        self.examples = list(examples)  # maker.redflag.Flagged: a few discarded replies, distinct reasons first
        self.escalated = list(escalated)  # the escalation rungs it climbed (maker.escalation)


class BackendError(MakerError):
    """A backend could not produce samples. ``step``: the step that asked, when a run did."""

    step: int | None = None


class BackendTimeout(BackendError):
    """The backend did not answer in time."""


class BackendConnectionError(BackendError):
    """The connection to the backend failed or was reset."""


class BackendHTTPError(BackendError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class BackendResponseError(BackendError):
    """The server answered, but with something that is not a usable completion."""


class BackendCodeError(BackendError):
    """A backend's own code raised an unexpected exception or returned something other than lists of
    ``Sample``: a bug to fix in the backend, not a failure that a rerun gets past."""


class JournalError(MakerError):
    """A journal could not be used: unreadable, written by another task or settings, or corrupt."""


def short_repr(value: Any, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RedFlagReason(StrEnum):
    """Why a reply was discarded. Statistics count each reason separately."""

    TOO_LONG = "too_long"  # the reply used more tokens than the red-flag limit allows
    TRUNCATED = "truncated"  # the backend cut the reply off at its token limit
    MALFORMED = "malformed"  # the task's parser rejected the reply's format
    INVALID = "invalid"  # well-formed, but failed the task's answer-free validity check


class RedFlag(Exception):
    """Raised by ``Task.parse`` (or ``Task.check``) to discard a reply.

    >>> raise RedFlag("no 'move = [...]' line")                      # doctest: +SKIP
    >>> raise RedFlag("disk 3 moved onto disk 1", RedFlagReason.INVALID)  # doctest: +SKIP
    """

    def __init__(self, detail: str = "", reason: RedFlagReason = RedFlagReason.MALFORMED) -> None:
        super().__init__(detail or reason.value)
        self.detail = detail
        self.reason = RedFlagReason(reason)


@dataclass(frozen=True, slots=True)
class Flagged:
    """A discarded reply: why, the parser's or check's own words, and the raw text."""

    reason: RedFlagReason
    detail: str
    text: str
