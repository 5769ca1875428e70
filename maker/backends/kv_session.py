"""What the hand-written decoders share: their prefill (``KVDecoder``) and the KV cache of a batch (``KVSession``).

A ``KVSession`` holds a batch whose rows are the samples of a few distinct prompts. ``extend``
feeds every row up to ``T`` new tokens in one forward pass (its pending token and a draft; see
``maker.backends.drafting``) and returns the logits after each; ``accept`` then keeps a number of
them per row (a rejected draft is rewound: its columns are masked and later overwritten);
``select`` drops finished rows. The cache has two blocks, each read whole by batched matmuls:

- the prompt block ``pkv`` (layers, 2, owners, kv_heads, width, head_dim) holds each distinct
  prompt once, left-padded, for all of its samples; ``rbias`` (rows, width) masks, per row, its
  prompt's padding and the opening draft tokens the row did not keep (below). Attention to it
  runs on a grid of (owner, j-th sample of that owner) slots, so a prompt's keys and values are
  read once per pass however many samples share it;
- the generated block ``gkv`` (layers, 2, rows, kv_heads, columns, head_dim) holds each row's own
  tokens from column 0; ``glen`` counts a row's valid columns, so rows advance by different
  numbers of tokens. It lives in the decoder's ``Workspace`` and grows by copying, a few times
  per batch: fresh memory costs page faults (measured: 45 ms for a 58 MB block, 10x a reused one).

Masks are a very negative finite number and masked columns hold finite values (the workspace is
zeroed when made and only ever receives keys and values): a masked column's weight is exactly 0,
and nothing turns into NaN.

A prefill (``KVDecoder.prefill``) may carry an *opening draft* per prompt: a guess at the start of its
replies, run with the prompt as if it were part of it, so that the first pass already checks
several reply tokens. Its columns sit at the right end of the prompt block; ``accept`` then keeps
a number of them per row, and masks the rest for that row alone.

``KVDecoder`` is the base of the hand-written decoders: it runs the prefill and makes the session;
the model-specific arithmetic (embedding, q/k/v with positions, the rest of a layer, the head)
comes from the subclass (``maker.backends.hf_decode.GPT2Decoder``, ``maker.backends.llama_decode.LlamaDecoder``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from itertools import accumulate, groupby
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

_GROW = 32  # generated columns a block starts with, and adds at least when full (step replies are mostly shorter)


class Workspace:
    """Two flat buffers that a decoder's sessions take their generated blocks from, so that a new
    batch reuses memory instead of faulting in fresh pages. A block is taken from the buffer the
    current block is not in (growing and dropping rows copy from one to the other). One session
    per decoder at a time: a session made later takes the buffers over, and the older one refuses
    to go on (``check``)."""

    def __init__(self) -> None:
        self.buffers: list[torch.Tensor | None] = [None, None]
        self.owner: object = None

    def take(self, shape: Sequence[int], like: torch.Tensor, current: torch.Tensor | None = None) -> torch.Tensor:
        """A contiguous tensor of ``shape`` (``like``'s dtype and device) outside ``current``'s buffer."""
        size = math.prod(shape)
        for k, buffer in enumerate(self.buffers):
            if current is not None and buffer is not None and current.data_ptr() == buffer.data_ptr():
                continue
            if buffer is None or buffer.numel() < size or buffer.dtype != like.dtype or buffer.device != like.device:
                buffer = self.buffers[k] = like.new_zeros(max(size, 3 * (0 if buffer is None else buffer.numel()) // 2))
            return buffer[:size].view(*shape)
        raise AssertionError("a block is always outside one of the two buffers")

    def check(self, session: object) -> None:
        if self.owner is not session:
            raise RuntimeError("a newer session of this decoder took over its workspace: finish one batch before starting the next")


class KVDecoder(ABC):
    """A hand-written decoder (``GPT2Decoder``, ``LlamaDecoder``): the prefill, written once here, and
    the session run the per-token math of one model family, which a subclass supplies: ``embed``
    gives the residual stream (tokens, width) of tokens at positions, ``qkv`` a layer's queries,
    keys and values (tokens, heads + 2 kv_heads, head_dim) at their positions, ``finish_layer`` the
    stream after the layer given its attention output (tokens, heads * head_dim)."""

    kind: str
    drafts = True  # its session rewinds rejected draft tokens
    device: torch.device
    max_positions: int
    heads: int
    kv_heads: int
    head_dim: int
    layers: Sequence[Any]
    workspace: Workspace

    @abstractmethod
    def embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor: ...
    @abstractmethod
    def qkv(self, h: torch.Tensor, layer: int, positions: torch.Tensor) -> torch.Tensor: ...
    @abstractmethod
    def finish_layer(self, attended: torch.Tensor, h: torch.Tensor, layer: int) -> torch.Tensor: ...
    @abstractmethod
    def logits(self, h: torch.Tensor) -> torch.Tensor: ...
    @abstractmethod
    def scale(self, layer: int) -> float: ...

    def prefill(self, prompts: Sequence[Sequence[int]], counts: Sequence[int],
                drafts: Sequence[Sequence[int]] | None = None) -> tuple[KVSession, torch.Tensor]:
        """The session of ``counts[o]`` rows per prompt, and each row's logits (rows, T, vocab) after
        its prompt and after each token of its prompt's opening draft (``drafts[o]``, run with the
        prompt). T is one more than the longest draft."""
        drafted = [0] * len(prompts) if drafts is None else [len(d) for d in drafts]
        full = prompts if drafts is None else [[*p, *d] for p, d in zip(prompts, drafts, strict=True)]
        lengths = [len(p) for p in full]
        grid = _PromptGrid.of(lengths, self.device)
        h = self.embed(torch.tensor([t for p in full for t in p], device=self.device), grid.pos)
        neg = torch.finfo(h.dtype).min
        causal = torch.ones(grid.width, grid.width, dtype=torch.bool, device=self.device).tril()
        mask = torch.zeros(len(full), 1, grid.width, grid.width, device=self.device)
        mask.masked_fill_(~(causal & grid.valid[:, None, None, :]), neg)  # (owners, 1, query, key)
        keys_values: list[torch.Tensor] = []  # per layer, its keys and values on the grid (owners, kv_heads, width, head_dim)
        for i in range(len(self.layers)):
            h, k, v = self._prefill_layer(i, h, grid, mask)
            keys_values += k, v
        pkv = torch.stack(keys_values).view(len(self.layers), 2, *keys_values[0].shape)  # one copy for the whole cache
        owner = [o for o, c in enumerate(counts) for _ in range(c)]
        rows = torch.tensor(owner, device=self.device)
        # A row's next position is its own prompt's length, whatever the padding before it.
        pos = torch.tensor([len(p) for p in prompts], device=self.device).index_select(0, rows)
        pbias = torch.zeros(len(full), grid.width, device=self.device).masked_fill_(~grid.valid, neg)
        session = KVSession(self, pkv, pbias, owner, pos, None if drafts is None else [drafted[o] for o in owner])
        return session, self._tail_logits(h, lengths, drafted).index_select(0, rows)

    def _prefill_layer(self, i: int, h: torch.Tensor, grid: _PromptGrid, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The packed residual stream ``h`` after layer ``i``, and the layer's keys and values on the grid."""
        heads, kv = self.heads, self.kv_heads
        qkv = self.qkv(h, i, grid.pos).index_select(0, grid.to_grid)
        q, k, v = qkv.view(*grid.valid.shape, -1, self.head_dim).transpose(1, 2).split_with_sizes([heads, kv, kv], 1)
        keys, values = k, v
        if heads != kv:  # query head j reads key/value head j // groups, as HF's repeat_kv
            k, v = k.repeat_interleave(heads // kv, dim=1), v.repeat_interleave(heads // kv, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale(i))
        h = self.finish_layer(a.transpose(1, 2).reshape(-1, heads * self.head_dim).index_select(0, grid.from_grid), h, i)
        return h, keys, values

    def _tail_logits(self, h: torch.Tensor, lengths: Sequence[int], drafted: Sequence[int]) -> torch.Tensor:
        """Each prompt's logits (prompts, T, vocab) after its own last token and after each of its
        ``drafted[o]`` draft tokens, the last of its ``lengths[o]`` packed ones; zero-padded to T."""
        ends = list(accumulate(lengths))
        tail = [i for end, d in zip(ends, drafted, strict=True) for i in range(end - 1 - d, end)]
        logits = self.logits(h.index_select(0, torch.tensor(tail, device=h.device)))
        t = 1 + max(drafted)
        if t == 1:
            return logits[:, None]
        places = _places(torch.tensor([1 + d for d in drafted], device=h.device), t)
        return logits.new_zeros(len(drafted) * t, logits.shape[-1]).index_copy_(0, places, logits).view(len(drafted), t, -1)


class _PromptGrid(NamedTuple):
    """Where packed prompt tokens sit on the (owner, width) grid, prompts right-aligned (left-padded)
    so that every prompt's next token falls in the same cache column. Tokens run packed (no padding)
    through the matmuls; only attention sees the padded grid."""

    width: int
    pos: torch.Tensor  # each packed token's position in its own prompt: positions start at 0 per row
    to_grid: torch.Tensor  # grid slot -> packed token (a padding slot repeats its row's first token)
    from_grid: torch.Tensor  # packed token -> grid slot
    valid: torch.Tensor  # (owners, width): True where the grid holds a prompt token

    @staticmethod
    def of(lengths: Sequence[int], device: torch.device) -> _PromptGrid:
        width = max(lengths)
        starts = list(accumulate(lengths, initial=0))  # prompt -> its first packed token
        pad = [width - n for n in lengths]
        return _PromptGrid(
            width,
            pos=torch.tensor([j for n in lengths for j in range(n)], device=device),
            to_grid=torch.tensor([starts[o] + max(0, j - p) for o, p in enumerate(pad) for j in range(width)], device=device),
            from_grid=torch.tensor([o * width + p + j for o, p in enumerate(pad) for j in range(width - p)], device=device),
            valid=torch.tensor([[j >= p for j in range(width)] for p in pad], device=device),
        )


class KVSession:
    """One batch in flight; rows are addressed by their position in the current batch."""

    def __init__(self, dec: KVDecoder, pkv: torch.Tensor, pbias: torch.Tensor, owner: list[int], pos: torch.Tensor,
                 drafted: list[int] | None = None) -> None:
        """``pbias`` (owners, width) masks each prompt's padding; ``pos`` is each row's next position.
        ``drafted``: per row, its prompt's opening draft tokens (the last columns of the prompt
        block), which the first ``accept`` keeps or masks; None: no opening drafts."""
        self.dec, self.pkv, self.pos = dec, pkv, pos
        self.rbias = pbias.index_select(0, torch.tensor(owner, device=pbias.device))
        self.neg = torch.finfo(pkv.dtype).min
        dec.workspace.owner = self
        self.gkv = dec.workspace.take((*pkv.shape[:2], len(owner), pkv.shape[3], _GROW, pkv.shape[5]), pkv)
        self.glen = [0] * len(owner)  # valid generated columns per row
        self._drafted = drafted
        self._set_owners(owner)

    def _set_owners(self, owner: list[int]) -> None:
        """Row -> owner (ascending, owners numbered from 0 without gaps), and the slot grid."""
        self.owner = owner
        self.grid = _Grid.of(owner, self.pos.device)
        self.kin = list(owner)  # rows with one kin number hold the same tokens (prompt and generated)

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the rows at positions ``keep`` (ascending)."""
        self.dec.workspace.check(self)
        index = torch.tensor(keep, device=self.pos.device)
        owners = sorted({self.owner[r] for r in keep})
        if len(owners) < self.pkv.shape[2]:  # some prompts have no sample left
            self.pkv = self.pkv.index_select(2, torch.tensor(owners, device=index.device))
        self.rbias = self.rbias.index_select(0, index)
        shape = list(self.gkv.shape)
        shape[2] = len(keep)
        self.gkv = torch.index_select(self.gkv, 2, index, out=self.dec.workspace.take(shape, self.gkv, self.gkv))
        self.pos = self.pos.index_select(0, index)
        self.glen = [self.glen[r] for r in keep]
        kin = [self.kin[r] for r in keep]
        renumber = {o: k for k, o in enumerate(owners)}
        self._set_owners([renumber[self.owner[r]] for r in keep])
        self.kin = kin

    def accept(self, kept: Sequence[int]) -> None:
        """After ``extend``: row r keeps its first ``kept[r]`` new tokens; the rest are rewound.
        After a prefill with opening drafts: row r keeps the first ``kept[r]`` tokens of its prompt's draft."""
        if self._drafted is not None:
            self._accept_opening(kept)
            return
        self.glen = [g + k for g, k in zip(self.glen, kept, strict=True)]
        self.pos = self.pos + torch.tensor(kept, device=self.pos.device)
        # Rows that held the same tokens, were fed the same ones and kept as many still hold the same.
        kin: dict[tuple[int, int], int] = {}
        self.kin = [kin.setdefault((fed, k), len(kin)) for fed, k in zip(self._fed, kept, strict=True)]

    def _accept_opening(self, kept: Sequence[int]) -> None:
        device, width = self.pos.device, self.rbias.shape[1]
        kept_t = torch.tensor(kept, device=device)
        # A row's draft holds the prompt block's last ``drafted`` columns; those past its kept ones go.
        first_unkept = width - torch.tensor(self._drafted, device=device) + kept_t
        self.rbias.masked_fill_(torch.arange(width, device=device) >= first_unkept[:, None], self.neg)
        self.pos = self.pos + kept_t
        kin: dict[tuple[int, int], int] = {}  # rows of one prompt that kept as many hold the same tokens
        self.kin = [kin.setdefault((o, k), len(kin)) for o, k in zip(self.owner, kept, strict=True)]
        self._drafted = None

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """One token per row, kept: the next logits of each row (rows, vocab)."""
        logits = self.extend(tokens[:, None])[:, 0]
        self.accept([1] * len(tokens))
        return logits

    def _grow(self, columns: int) -> None:
        have = self.gkv.shape[4]
        size = max(columns, have + max(_GROW, have // 2))
        new = self.dec.workspace.take((*self.gkv.shape[:4], size, self.gkv.shape[5]), self.gkv, self.gkv)
        new[:, :, :, :, :have] = self.gkv
        self.gkv = new

    def extend(self, tokens: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """Feed ``tokens`` (rows, T) after each row's valid tokens; the logits after each (rows, T, vocab).

        Row r's tokens are its first ``lengths[r]`` (default: all T); the rest are padding, whose
        logits are zeros. The new keys and values go to columns ``glen[r]`` onwards; until ``accept``
        counts them they are not part of the row (a later ``extend`` overwrites them).

        Two rows that hold the same tokens and are fed the same ones compute the same thing (the
        samples of a step mostly agree token for token), so only one of them is computed: its keys
        and values are written to both, its logits returned for both. Real tokens run packed
        through the matmuls; only attention sees the (rows, T) grid."""
        dec, device = self.dec, self.pos.device
        dec.workspace.check(self)
        if self._drafted is not None:
            raise RuntimeError("the prefill's opening drafts were never accepted: call accept first")
        rows, t = tokens.shape
        lengths = [t] * rows if lengths is None else list(lengths)
        fed: dict[tuple[int, tuple[int, ...]], int] = {}  # (kin, tokens fed) -> index among the computed rows
        ids = tokens.tolist()
        self._fed = [fed.setdefault((kin, tuple(row[:n])), len(fed)) for kin, row, n in zip(self.kin, ids, lengths, strict=True)]
        # The first row of each: fed numbers count up in row order, so lead[f] is the row that computes f.
        lead = list({f: r for r, f in reversed(list(enumerate(self._fed)))}.values())
        lead.sort()
        n_lead = [lengths[r] for r in lead]
        used = max(g + n for g, n in zip(self.glen, lengths, strict=True))
        if used > self.gkv.shape[4]:
            self._grow(used)
        # The computed rows ("leads"): their packed tokens, positions and columns.
        starts = list(accumulate(n_lead, initial=0))
        lead_index = torch.tensor(lead, device=device)
        every = len(lead) == rows
        packed = _places(torch.tensor(n_lead, device=device), t)
        lead_tokens = tokens if every else tokens.index_select(0, lead_index)
        lead_glen = [self.glen[r] for r in lead]
        steps = torch.arange(t, device=device)
        cols = torch.tensor(lead_glen, device=device)[:, None] + steps  # (leads, T): where each new token goes
        lead_pos = self.pos if every else self.pos.index_select(0, lead_index)
        positions = (lead_pos[:, None] + steps).reshape(-1)[packed]
        # Every row's new tokens, as (row, column, packed token of its lead), then as the flat index of
        # each (token, key/value head) in a layer's (rows, kv_heads, columns) block of head_dim vectors.
        lengths_t = torch.tensor(lengths, device=device)
        row_of = torch.repeat_interleave(torch.arange(rows, device=device), lengths_t)
        offset = _places(lengths_t, 0)  # each token's place within its row
        glen_t = torch.tensor(self.glen, device=device)
        if every:
            source = None
        else:
            lead_start = torch.tensor(starts[:-1], device=device)
            source = lead_start[torch.tensor(self._fed, device=device)][row_of] + offset
        columns = self.gkv.shape[4]
        heads = torch.arange(dec.kv_heads, device=device)
        flat = ((row_of[:, None] * dec.kv_heads + heads) * columns + (glen_t[row_of] + offset)[:, None]).reshape(-1)
        # Query s of a lead sees its valid columns and the new ones up to its own.
        seen = torch.arange(used, device=device) <= cols[:, :, None]  # (leads, T, used)
        groups = dec.heads // dec.kv_heads
        leads = len(lead)
        grid = self.grid if every else _Grid.of([self.owner[r] for r in lead], device)
        gbias = torch.zeros(leads, t, used, device=device).masked_fill_(~seen, self.neg)
        gbias = gbias[:, None, :, None, :].expand(leads, 1, t, groups, used).reshape(leads, 1, t * groups, used)
        rbias = self.rbias if every else self.rbias.index_select(0, lead_index)
        pbias = rbias[:, None, None, :].expand(leads, 1, t * groups, -1)
        bias = torch.cat([pbias, gbias], dim=-1)
        h = dec.embed(lead_tokens.reshape(-1)[packed], positions)
        dense = len(packed) == leads * t
        for i in range(len(self.gkv)):
            q, k, v = dec.qkv(h, i, positions).split_with_sizes([dec.heads, dec.kv_heads, dec.kv_heads], 1)
            for block, new in ((self.gkv[i, 0], k), (self.gkv[i, 1], v)):
                new = new if source is None else new.index_select(0, source)
                block.view(-1, block.shape[-1]).index_copy_(0, flat, new.reshape(-1, block.shape[-1]))
            if not dense:  # padding queries are zeros: computed, never read
                q = q.new_zeros(leads * t, *q.shape[1:]).index_copy_(0, packed, q)
            keys, values = self.gkv[i, 0, :, :, :used], self.gkv[i, 1, :, :, :used]
            if not every:
                keys, values = keys.index_select(0, lead_index), values.index_select(0, lead_index)
            attended = self._attend(i, q.view(leads, t, dec.heads, -1), bias, grid, keys, values)
            h = dec.finish_layer(attended if dense else attended.index_select(0, packed), h, i)
        logits = dec.logits(h)
        if not dense:
            logits = logits.new_zeros(leads * t, logits.shape[-1]).index_copy_(0, packed, logits)
        logits = logits.view(leads, t, -1)
        if not every:  # each row gets its lead's
            logits = logits.index_select(0, torch.tensor(self._fed, device=device))
        return logits

    def _attend(self, i: int, q: torch.Tensor, bias: torch.Tensor, grid: _Grid, keys: torch.Tensor,
                values: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s attention output (rows * T, heads * head_dim) for queries q (rows, T, heads, head_dim)
        of the rows laid out by ``grid``, whose generated keys and values are ``keys``, ``values``.

        The query heads of a key/value head are matmul rows against that head's keys (grouped-query
        attention reads the cache once; GPT-2 has one query head per key/value head)."""
        pkv, m, fill, slots, dec = self.pkv, grid.m, grid.fill, grid.slots, self.dec
        rows, t, heads, hd = q.shape
        owners, kv, width = pkv.shape[2], pkv.shape[3], pkv.shape[4]
        tg = t * (heads // kv)  # queries per key/value head of a row
        by_kv = q.view(rows, t, kv, heads // kv, hd).transpose(1, 2).reshape(rows, kv, tg, hd)
        # Scores against the prompt on the (owner, sample) grid, then back to rows.
        grid_q = (by_kv if fill is None else by_kv.index_select(0, fill)).view(owners, m, kv, tg, hd)
        grid_q = grid_q.transpose(1, 2).reshape(owners, kv, m * tg, hd)
        s_prompt = torch.matmul(grid_q, pkv[i, 0].transpose(-1, -2)).view(owners, kv, m, tg, width)
        s_prompt = s_prompt.transpose(1, 2).reshape(owners * m, kv, tg, width)
        if slots is not None:
            s_prompt = s_prompt.index_select(0, slots)
        s_new = torch.matmul(by_kv, keys.transpose(-1, -2))  # (rows, kv, tg, used)
        att = torch.softmax(torch.cat([s_prompt, s_new], dim=-1).mul_(dec.scale(i)).add_(bias), dim=-1)
        a_prompt = att[..., :width] if fill is None else att[..., :width].index_select(0, fill)
        a_prompt = a_prompt.reshape(owners, m, kv, tg, width).transpose(1, 2).reshape(owners, kv, m * tg, width)
        o = torch.matmul(a_prompt, pkv[i, 1]).view(owners, kv, m, tg, hd).transpose(1, 2).reshape(owners * m, kv, tg, hd)
        if slots is not None:
            o = o.index_select(0, slots)
        o = o + torch.matmul(att[..., width:], values)
        # (rows, kv, T, groups, hd) -> (rows, T, kv * groups * hd): query head j is kv head j // groups.
        return o.view(rows, kv, t, heads // kv, hd).transpose(1, 2).reshape(rows * t, heads * hd)


def _places(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """For rows of ``lengths`` tokens, each token's ``row * width + place in its row``, row after row."""
    starts = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(int(lengths.sum()), device=lengths.device) - torch.repeat_interleave(starts, lengths)
    if not width:
        return within
    return torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device) * width, lengths) + within


class _Grid(NamedTuple):
    """How rows (ascending owners, each owner's rows together) map onto the (owner, sample) grid
    on which attention to the shared prompt block runs."""

    m: int  # the most rows of one owner
    fill: torch.Tensor | None  # grid slot -> row (a slot past an owner's rows repeats its last): None if rows are the grid
    slots: torch.Tensor | None  # row -> grid slot

    @staticmethod
    def of(owner: Sequence[int], device: torch.device) -> _Grid:
        counts = [len(list(rows)) for _, rows in groupby(owner)]
        m = max(counts)
        if all(c == m for c in counts):
            return _Grid(m, None, None)
        first = list(accumulate(counts, initial=0))  # owner -> its first row
        slots = torch.tensor([o * m + r - first[o] for r, o in enumerate(owner)], device=device)
        fill = torch.tensor([first[o] + min(j, counts[o] - 1) for o in range(len(counts)) for j in range(m)], device=device)
        return _Grid(m, fill, slots)
