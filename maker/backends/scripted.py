"""A scripted backend for users' tests: replies come from a list or a function, in order."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from maker.backends.base import Backend, Sample, SampleRequest


class ScriptedBackend(Backend):
    """Answers each sample with the next scripted reply (or ``reply_for(request)``).

    >>> backend = ScriptedBackend(["move = [1, 0, 2]", "move = [1, 0, 1]"])
    >>> backend.requests  # every request it served, for assertions
    []
    """

    name = "scripted"

    def __init__(self, replies: Iterable[str] | None = None, *, reply_for: Callable[[SampleRequest], str] | None = None) -> None:
        if (replies is None) == (reply_for is None):
            raise ValueError("give exactly one of replies or reply_for")
        self._replies = iter(replies) if replies is not None else None
        self._reply_for = reply_for
        self.requests: list[SampleRequest] = []

    async def sample(self, request: SampleRequest) -> list[Sample]:
        self.requests.append(request)
        out = []
        for _ in range(request.n):
            if self._replies is not None:
                try:
                    text = next(self._replies)
                except StopIteration:
                    raise RuntimeError(f"scripted backend ran out of replies after {len(self.requests)} requests") from None
            else:
                text = self._reply_for(request)  # type: ignore[misc]
            tokens = max(1, len(text.split()))
            out.append(Sample(text, tokens, "length" if tokens > request.max_tokens else "stop"))
        return out
