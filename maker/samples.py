"""What a backend is asked and what it answers: the plain request and sample types.

They sit below every other module (only ``maker.errors`` is as low), so the task layer, the judge
and the backends share them without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

FinishReason = Literal["stop", "length"]


class SampleRequest(NamedTuple):
    """What to sample: one prompt, how many replies, the generation settings, and which
    microagent (a model, an adapter or a served-model name in the backend's table) writes them.
    Immutable; a named tuple because a run makes one or two a step, a million steps a run."""

    prompt: str
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 750  # generation cap; a reply that hits it comes back with finish "length"
    seed: int | None = None
    agent: str | None = None  # None: the backend's default microagent
    #: The task's guess at a reply's continuation (reply so far -> the text it expects next, or None):
    #: backends that draft (``hf``) check it against the model's own tokens; it never changes a reply.
    draft: Callable[[str], str | None] | None = None
    #: Strings that end a reply: the backend cuts the text before the first one it writes.
    stop: tuple[str, ...] = ()

    # The draft hook is no part of what a request is: two requests that differ only in it are equal.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, SampleRequest) and self[:6] == other[:6] and self.stop == other.stop

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self[:6], self.stop))


class Sample(NamedTuple):
    """One reply: its text, how many tokens it took, and why generation stopped."""

    text: str
    tokens: int
    finish_reason: FinishReason = "stop"
