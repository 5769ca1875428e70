"""``Group`` (the rows of one request) and ``Sampler``: their tokens picked from logits, one seeded uniform per (row, position).

Each row owns a stream of uniforms: the token at position p of row r is drawn with ``u[r, p]``, by
inverse-CDF sampling at the row's temperature (argmax at temperature 0). A seeded request draws
its rows' streams up front (``n`` rows x its own cap), so what a seed gives does not depend on the
batch it shares, on when other rows finish, or on how many tokens a forward pass adds at a time.
That is what makes drafted decoding exact: a drafted position is accepted only if the model's own
draw at that position, with that position's uniform, equals the draft. (Exact up to floating-point
rounding: a drafted pass computes the same logits with matmuls of other shapes.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from maker.backends.drafting import DraftHook


@dataclass(frozen=True, slots=True, eq=False)  # rows find their group by identity
class Group:
    """The rows of one request: they share a prompt, a temperature, a cap and a random stream."""

    prompt: int  # index into the distinct prompts of the batch
    n: int
    temperature: float
    max_tokens: int  # already clipped to the model's positions
    generator: torch.Generator | None = None  # None: the batch's shared stream (or greedy)
    draft: DraftHook | None = None  # the task's guess at the rest of a reply (maker.backends.drafting)
    stop: tuple[str, ...] = ()  # strings that end a reply


class Sampler:
    """The uniforms, temperatures and greedy flags of a batch's rows; ``select`` follows the session's."""

    def __init__(self, row_group: Sequence[Group], shared: torch.Generator, device: torch.device) -> None:
        self.greedy_only = all(g.temperature == 0 for g in row_group)
        if self.greedy_only:
            return
        width = max(g.max_tokens for g in row_group)
        streams, seen = [], set()
        for g in row_group:  # rows are laid out group by group
            if id(g) in seen:
                continue
            seen.add(id(g))
            if g.temperature == 0:
                u = torch.zeros(g.n, g.max_tokens, device=device)
            else:
                u = torch.rand(g.n, g.max_tokens, generator=g.generator or shared, device=device)
            streams.append(torch.nn.functional.pad(u, (0, width - g.max_tokens)))
        self.u = torch.cat(streams)
        self.greedy = torch.tensor([g.temperature == 0 for g in row_group], device=device)
        self.inv_temp = torch.tensor([1.0 / g.temperature if g.temperature else 1.0 for g in row_group], device=device)

    def select(self, keep: Sequence[int]) -> None:
        if self.greedy_only:
            return
        index = torch.tensor(keep, device=self.u.device)
        self.u, self.greedy, self.inv_temp = self.u.index_select(0, index), self.greedy[index], self.inv_temp[index]

    def pick(self, logits: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
        """The token each row draws at positions ``offsets[r] + t`` from ``logits`` (rows, T, vocab): (rows, T)."""
        if self.greedy_only:
            return logits.argmax(-1)
        rows, t, vocab = logits.shape
        start = torch.tensor(offsets, device=logits.device)[:, None]
        where = (start + torch.arange(t, device=logits.device)).clamp_(max=self.u.shape[1] - 1)
        u = self.u.gather(1, where)  # past a row's cap: never kept, any uniform will do
        cdf = torch.softmax(logits * self.inv_temp[:, None, None], dim=-1).cumsum_(-1)
        # The first token whose cumulative probability exceeds u (scaled by the total, which
        # rounding leaves a hair off 1); zero-probability tokens are never chosen.
        picked = torch.searchsorted(cdf, (u * cdf[..., -1])[..., None], right=True)[..., 0].clamp_(max=vocab - 1)
        return torch.where(self.greedy[:, None], logits.argmax(-1), picked)
