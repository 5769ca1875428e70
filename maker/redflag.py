"""Red flags: the closed set of reasons a reply is thrown away instead of voting.

A red-flagged reply casts no vote and is never repaired (MAKER section 3.3): long or malformed
replies come from a confused model, and discarding them removes correlated errors.
"""

from __future__ import annotations

from enum import StrEnum


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
