"""Red flags: the one judge that decides whether a reply is thrown away instead of voting
(``RedFlag``, its reasons and ``Flagged`` live in ``maker.errors``, with the other exceptions).

A red-flagged reply casts no vote and is never repaired (MAKER section 3.3): long or malformed
replies come from a confused model, and discarding them removes correlated errors.
"""

from __future__ import annotations

from typing import Any

from maker.errors import Flagged, RedFlag, RedFlagReason, StepError
from maker.samples import Sample
from maker.task import Task, rule_violation

__all__ = ["Flagged", "RedFlag", "RedFlagJudge", "RedFlagReason", "rule_violation"]


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
            broken = rule_violation(self.task, state, candidate, step=step) if self.checks else None
        except RedFlag as flag:
            return Flagged(flag.reason, flag.detail, text)
        except StepError:
            raise
        except Exception as exc:
            raise StepError(f"task code raised {type(exc).__name__}: {exc} (it must raise maker.RedFlag to reject a "
                            f"reply; reply: {text[:200]!r})", step=step, state=state) from exc
        return candidate if broken is None else Flagged(broken.reason, broken.detail, text)
