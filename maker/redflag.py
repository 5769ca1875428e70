"""Red flags: the closed set of reasons a reply is thrown away instead of voting, and the one
judge that applies them.

A red-flagged reply casts no vote and is never repaired (MAKER section 3.3): long or malformed
replies come from a confused model, and discarding them removes correlated errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from maker.errors import StepError

if TYPE_CHECKING:
    from maker.backends.base import Sample
    from maker.task import Task


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


def rule_violation(task: Task, state: Any, candidate: Any) -> RedFlag | None:
    """The ``RedFlag`` that ``candidate`` raises under the task's answer-free rules (``Task.check``), or None.
    The one place ``check`` is applied: as a red flag by ``RedFlagJudge`` when a run's checks are on, after
    the fact by the statistics (``rule_violations``) when they are off, and by ``maker verify``."""
    try:
        task.check(state, candidate)
    except RedFlag as flag:
        return flag
    return None


class RedFlagJudge:
    """The red-flag judgement, the same for the engine, estimation and model evaluation.

    A reply longer than ``max_tokens`` is ``too_long`` however it ended (the paper's rule); one
    the backend cut at its generation cap is ``truncated``; then the task's parser decides, and,
    with ``checks``, its answer-free check. The verdict is the candidate or a ``Flagged``.

    >>> from maker import load_task
    >>> from maker.backends.base import Sample
    >>> task = load_task("hanoi", disks=3)
    >>> RedFlagJudge(task, max_tokens=5, checks=False).judge(task.initial_state(), Sample("move = [1, 0, 2]", 9)).reason
    <RedFlagReason.TOO_LONG: 'too_long'>
    """

    def __init__(self, task: Task, *, max_tokens: int, checks: bool) -> None:
        self.task, self.max_tokens = task, max_tokens
        self.checks = checks and task.has_check

    def judge(self, state: Any, sample: Sample, memo: dict[str, Any] | None = None, *, step: int = 0) -> Any:
        """The candidate in ``sample``, or the ``Flagged`` it is discarded as. ``memo`` caches
        verdicts by reply text within one state (parse and check are pure)."""
        if sample.tokens > self.max_tokens:
            return Flagged(RedFlagReason.TOO_LONG, f"{sample.tokens} tokens > {self.max_tokens}", sample.text)
        if sample.finish_reason == "length":
            return Flagged(RedFlagReason.TRUNCATED, "cut at the generation cap", sample.text)
        if memo is None:
            return self._parse(state, sample.text, step)
        verdict = memo.get(sample.text, memo)
        if verdict is memo:  # not seen in this state yet
            verdict = memo[sample.text] = self._parse(state, sample.text, step)
        return verdict

    def _parse(self, state: Any, text: str, step: int) -> Any:
        try:
            candidate = self.task.parse(state, text)
            try:
                hash(candidate)
            except TypeError as exc:
                raise StepError(f"task.parse returned an unhashable candidate (the vote key must be hashable): {exc}",
                                step=step, state=state) from exc
            broken = rule_violation(self.task, state, candidate) if self.checks else None
        except RedFlag as flag:
            return Flagged(flag.reason, flag.detail, text)
        except StepError:
            raise
        except Exception as exc:
            raise StepError(f"task code raised {type(exc).__name__}: {exc} (it must raise maker.RedFlag to reject a "
                            f"reply; reply: {text[:200]!r})", step=step, state=state) from exc
        return candidate if broken is None else Flagged(broken.reason, broken.detail, text)
