"""Draft tokens for drafted decoding (``maker.backends.hf_decode.decode``).

A draft is a guess at a row's next tokens. The decoder feeds it with the row's pending token in
one forward pass and keeps the longest prefix the model itself would have written (see
``maker.backends.sampler``), so a draft changes only how fast a reply is written, never what it
says. Where drafts come from, first that applies:

1. **Replies to the same prompt**: a sample of a step nearly always repeats the step's other
   samples word for word. Replies already written for this prompt (by rows that finished in this
   batch, or in an earlier batch of the backend: ``ReplyMemory``) are followed while the row's
   reply so far is a prefix of one of them.
2. **The task's hook** (``SampleRequest.draft``, from ``Task.draft``): given the reply text so far,
   the text the task expects next (Hanoi: the state with the model's own move applied). It sees the
   step's state and the reply, never the oracle. Where a task has a hook and it has no guess, the
   row gets no draft: a lookup there is mostly wrong, and a wrong draft costs compute.
3. **Prompt lookup** (tasks without a hook): the reply's last few tokens are looked up in the prompt, and what followed
   them there is the draft (replies of step tasks copy their prompt: the next state is the
   current one with one change).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

DraftHook = Callable[[str], "str | None"]  # reply so far -> its expected continuation, or None

_NGRAMS = (3, 2, 1)  # tail lengths tried for prompt lookup, longest first
_LOOKUP_TOKENS = 6  # at most this many tokens from a prompt lookup: a copy soon departs from its source


class ReplyMemory:
    """The latest replies (token ids) per prompt text, across batches; bounded, oldest dropped."""

    def __init__(self, prompts: int = 4096, per_prompt: int = 2) -> None:
        self.prompts, self.per_prompt = prompts, per_prompt
        self._replies: OrderedDict[str, list[tuple[int, ...]]] = OrderedDict()

    def get(self, prompt: str) -> list[tuple[int, ...]]:
        return self._replies.get(prompt, [])

    def add(self, prompt: str, reply: Sequence[int]) -> None:
        known = self._replies.setdefault(prompt, [])
        self._replies.move_to_end(prompt)
        reply = tuple(reply)
        if reply not in known:
            known.insert(0, reply)
            del known[self.per_prompt :]
        while len(self._replies) > self.prompts:
            self._replies.popitem(last=False)


class Drafter:
    """Drafts for the rows of one batch. ``prompts`` are the distinct prompts' token ids, ``texts``
    the same prompts as text (the memory's keys); a row is named by the decoder's row number and
    its prompt's index."""

    def __init__(self, prompts: Sequence[Sequence[int]], texts: Sequence[str], codec: Any,
                 memory: ReplyMemory | None, max_tokens: int, vocab: int | None = None) -> None:
        # codec: text <-> ids (``maker.backends.codec.Codec``: ``decode(ids)``, ``encode(text)`` without special tokens)
        self.prompts, self.texts, self.codec, self.memory, self.max_tokens = prompts, texts, codec, memory, max_tokens
        self.vocab = vocab  # the model's embedding rows: a hook's text may tokenize to ids past them
        # Replies known per prompt index: from the memory, then from rows as they finish.
        self.replies: list[list[tuple[int, ...]]] = [list(memory.get(t)) if memory else [] for t in texts]
        self.expected: dict[int, tuple[int, ...]] = {}  # row -> what its hook expects the whole reply to be
        self._hooked: dict[tuple[int, tuple[int, ...]], tuple[int, ...] | None] = {}  # (prompt, reply so far) -> expected
        self._index: dict[int, dict[tuple[int, ...], int]] = {}  # prompt -> its n-grams, made when first looked up
        self.stats = {"drafted": 0, "draft_accepted": 0}  # tokens proposed, and drawn by the model too

    def propose(self, row: int | None, prompt: int, hook: DraftHook | None, out: list[int], limit: int) -> list[int]:
        """Up to ``min(limit, max_tokens)`` tokens the row is likely to write after ``out``
        (row None: any row of the prompt, before it has written anything: the prefill's opening draft)."""
        limit = min(limit, self.max_tokens)
        if limit < 1:
            return []
        n = len(out)
        for reply in self.replies[prompt]:
            if len(reply) > n and list(reply[:n]) == out:
                return self._count(reply[n : n + limit])
        if hook is not None:  # the task knows its replies better than a lookup: no guess is no draft
            expected = self.expected.get(row)
            if expected is None or len(expected) <= n or list(expected[:n]) != out:
                expected = self._ask(prompt, hook, out)
                if row is not None:
                    self.expected[row] = expected  # type: ignore[assignment]
            return self._count(expected[n : n + limit] if expected is not None else ())
        return self._count(self._lookup(prompt, out, min(limit, _LOOKUP_TOKENS)))

    def opening(self, prompt: int, hook: DraftHook | None, limit: int, rows: int) -> list[int]:
        """The draft of the start of a prompt's replies, run with the prompt in the prefill (counted once per row)."""
        draft = self.propose(None, prompt, hook, [], limit)
        self.stats["drafted"] += len(draft) * (rows - 1)
        return draft

    def finished(self, prompt: int, out: list[int]) -> None:
        """A reply to ``prompt`` is complete: later rows of it (and later batches) may follow it."""
        reply = tuple(out)
        if reply not in self.replies[prompt]:
            self.replies[prompt].insert(0, reply)
        if self.memory is not None:
            self.memory.add(self.texts[prompt], reply)

    def _count(self, tokens: Sequence[int]) -> list[int]:
        self.stats["drafted"] += len(tokens)
        return list(tokens)

    def agreed(self, tokens: int) -> None:
        """The model drew ``tokens`` of a row's draft itself."""
        self.stats["draft_accepted"] += tokens

    def _ask(self, prompt: int, hook: DraftHook, out: list[int]) -> tuple[int, ...] | None:
        """The whole reply the hook expects after ``out``, in tokens (None: it has no guess yet).
        Samples of a step that agree so far share one call."""
        key = (prompt, tuple(out))
        if key in self._hooked:
            return self._hooked[key]
        so_far = self.codec.decode(out)
        try:
            more = hook(so_far)
        except Exception:  # a hook that breaks on an odd reply has no guess: drafts never fail a batch
            more = None
        expected = None
        if more:
            whole = self.codec.encode(so_far + more)
            # The reply's own tokens come first when they tokenize the same within the whole text;
            # otherwise the continuation is tokenized alone.
            expected = tuple(whole) if whole[: len(out)] == out else (*out, *self.codec.encode(more))
            if self.vocab is not None:  # a draft stops before a token the model does not have
                expected = expected[: next((i for i, t in enumerate(expected) if not 0 <= t < self.vocab), len(expected))]
        self._hooked[key] = expected
        return expected

    def _lookup(self, prompt: int, out: list[int], limit: int) -> list[int]:
        tokens = self.prompts[prompt]
        index = self._index.get(prompt)
        if index is None:
            index = self._index[prompt] = _ngram_index(tokens)
        context = out if len(out) >= _NGRAMS[0] else [*tokens[-_NGRAMS[0]:], *out]
        for n in _NGRAMS:
            if len(context) < n:
                continue
            end = index.get(tuple(context[-n:]))
            if end is not None:
                return list(tokens[end : end + limit])
        return []


def _ngram_index(tokens: Sequence[int]) -> dict[tuple[int, ...], int]:
    """n-gram -> the position just after its latest occurrence in ``tokens``, for each n in _NGRAMS."""
    index: dict[tuple[int, ...], int] = {}
    for n in _NGRAMS:
        for end in range(n, len(tokens)):  # an n-gram at the very end has no continuation
            index[tuple(tokens[end - n : end])] = end
    return index
