"""Lean batched decoding for the in-process transformers backend (``maker.backends.hf``).

A decoder prefills a batch of distinct prompts once each and returns a *session* with a row per
sample; ``select`` drops finished rows and ``step`` adds one token to every row. The decoders:

- ``GPT2Decoder`` runs GPT-2 weights by hand. At the size of our microagents the cost of HF
  ``generate`` is its per-step Python machinery and cache handling, not arithmetic; a short
  hand-written step over a preallocated cache, with a prompt's cache shared by its samples, is
  several times faster at small batches and about twice as fast at large ones.
- ``LlamaDecoder`` (``maker.backends.llama_decode``) does the same for Llama and Qwen2 models: the
  shared base and adapters merged into it.
- ``HFDecoder`` drives any causal LM's own forward with a ``DynamicCache``: the fallback.

``decode`` is the sampling loop over a session, greedy or at a temperature, up to EOS, a stop or the cap.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, groupby
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # imported at run time inside make_decoder: llama_decode imports this module
    from maker.backends.llama_decode import LlamaDecoder

_CHUNK = 16  # generated-cache columns added at a time (at least): masked columns still cost attention
_MERGE_BELOW = 1 << 20  # a full chunk smaller than this (in floats) is copied into the next one
_GELU_2C = 2 * math.sqrt(2 / math.pi)


@dataclass(frozen=True, slots=True, eq=False)  # rows find their group by identity
class Group:
    """The rows of one request: they share a prompt, a temperature, a cap and a random stream."""

    prompt: int  # index into the distinct prompts of the batch
    n: int
    temperature: float
    max_tokens: int  # already clipped to the model's positions
    generator: torch.Generator | None = None  # None: the batch's shared stream (or greedy)


class Session:
    """One batch in flight; rows are addressed by their position in the current batch. ``select``
    keeps only the given rows (ascending positions); ``step`` returns the next logits of each row."""

    def select(self, keep: Sequence[int]) -> None:
        raise NotImplementedError

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class GPT2Decoder:
    """GPT-2 (``GPT2LMHeadModel``) run by hand; matches HF's greedy output token for token."""

    kind = "gpt2"

    @staticmethod
    def supports(model: Any) -> bool:
        return type(model).__name__ == "GPT2LMHeadModel" and not getattr(model.config, "add_cross_attention", False)

    def __init__(self, model: Any) -> None:
        cfg, tr = model.config, model.transformer
        self.device = tr.wte.weight.device
        self.max_positions: int = cfg.n_positions
        self.heads, self.width, self.eps = cfg.n_head, cfg.n_embd, cfg.layer_norm_epsilon
        self.wte, self.wpe, self.head = tr.wte.weight, tr.wpe.weight, model.lm_head.weight
        self.ln_f = (tr.ln_f.weight, tr.ln_f.bias)
        self.layers = [
            (b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias, b.attn.c_proj.weight, b.attn.c_proj.bias,
             b.ln_2.weight, b.ln_2.bias, b.mlp.c_fc.weight, b.mlp.c_fc.bias, b.mlp.c_proj.weight, b.mlp.c_proj.bias)
            for b in tr.h
        ]
        head_dim = self.width // self.heads
        self.scales = [
            (head_dim**-0.5 if cfg.scale_attn_weights else 1.0) / (i + 1 if cfg.scale_attn_by_inverse_layer_idx else 1)
            for i in range(len(self.layers))
        ]
        from transformers.activations import ACT2FN

        tanh = cfg.activation_function in ("gelu_new", "gelu_pytorch_tanh")
        self.act: Callable[[torch.Tensor], torch.Tensor] = _gelu_tanh if tanh else ACT2FN[cfg.activation_function]

    def prefill(self, prompts: Sequence[Sequence[int]], counts: Sequence[int]) -> tuple[_GPT2Session, torch.Tensor]:
        device, heads, dim = self.device, self.heads, self.width
        owners, width = len(prompts), max(map(len, prompts))
        lengths = [len(p) for p in prompts]
        # Tokens run packed (no padding) through the matmuls; only attention sees the padded grid.
        ids = torch.tensor([t for p in prompts for t in p], device=device)
        pos = torch.tensor([j for n in lengths for j in range(n)], device=device)
        starts = list(accumulate(lengths, initial=0))
        to_grid = torch.tensor([starts[o] + max(0, j - width + lengths[o]) for o in range(owners) for j in range(width)], device=device)
        from_grid = torch.tensor([o * width + width - lengths[o] + j for o in range(owners) for j in range(lengths[o])], device=device)
        valid = torch.tensor([[j >= width - n for j in range(width)] for n in lengths], device=device)
        neg = torch.finfo(self.wte.dtype).min
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        mask = torch.zeros(owners, 1, width, width, device=device).masked_fill_(~(causal & valid[:, None, None, :]), neg)
        pkv = torch.empty(len(self.layers), 2, owners, heads, width, dim // heads, device=device)
        h = self.wte[ids] + self.wpe[pos]
        for i, layer in enumerate(self.layers):
            l1w, l1b, aw, ab, pw, pb = layer[:6]
            qkv = torch.addmm(ab, F.layer_norm(h, (dim,), l1w, l1b, self.eps), aw)
            qkv = qkv.index_select(0, to_grid).view(owners, width, 3, heads, -1).permute(2, 0, 3, 1, 4)
            pkv[i] = qkv[1:]
            a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask, scale=self.scales[i])
            a = a.transpose(1, 2).reshape(-1, dim).index_select(0, from_grid)
            h = self._mlp(torch.addmm(pb, a, pw).add_(h), layer)
        last = torch.tensor(starts[1:], device=device) - 1
        logits = F.layer_norm(h.index_select(0, last), (dim,), *self.ln_f, self.eps) @ self.head.T
        pbias = torch.zeros(owners, width, device=device).masked_fill_(~valid, neg)
        owner = [o for o, c in enumerate(counts) for _ in range(c)]
        rows = torch.tensor(owner, device=device)
        session = _GPT2Session(self, pkv, pbias, owner, torch.tensor(lengths, device=device).index_select(0, rows))
        return session, logits.index_select(0, rows)

    def _mlp(self, h: torch.Tensor, layer: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The residual stream ``h`` (tokens, width) after the layer's MLP."""
        _, _, _, _, _, _, l2w, l2b, fw, fb, mw, mb = layer
        a = F.layer_norm(h, (self.width,), l2w, l2b, self.eps)
        return torch.addmm(mb, self.act(torch.addmm(fb, a, fw)), mw).add_(h)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    # 0.5 x (1 + tanh(z)) == x sigmoid(2z): the same function, but torch's CPU tanh is several
    # times slower than its sigmoid. Six ops instead of one only pay off on large tensors.
    if x.numel() < 32768:
        return F.gelu(x, approximate="tanh")
    y = x * x
    return y.mul_(_GELU_2C * 0.044715).add_(_GELU_2C).mul_(x).sigmoid_().mul_(x)


class _GPT2Session(Session):
    """The KV cache in two blocks, each read whole by batched matmuls (over a contiguous tensor
    they run about 3x faster here than over a slice of a larger one):

    - the prompt block ``pkv`` (layers, 2, owners, heads, width, head_dim) holds each distinct
      prompt once, left-padded, for all of its samples; ``pbias`` (owners, width) masks padding.
      Attention to it runs on a grid of (owner, j-th sample of that owner) slots, so a prompt's
      keys and values are read once per step however many samples share it;
    - the generated block holds each row's new tokens in a list of chunks, each (layers, 2, rows,
      heads, columns, head_dim). A new chunk is added when the last is full, so nothing is ever
      copied to grow; chunks are zeroed, and ``gbias`` masks the columns not yet written.

    Masks are a very negative finite number and masked columns hold finite values: no NaN.
    """

    def __init__(self, dec: GPT2Decoder, pkv: torch.Tensor, pbias: torch.Tensor, owner: list[int], pos: torch.Tensor) -> None:
        self.dec, self.pkv, self.pbias, self.pos = dec, pkv, pbias, pos
        self.neg = torch.finfo(pkv.dtype).min
        self.chunks: list[torch.Tensor] = []
        self.gbias = pkv.new_empty(0)
        self.cur = 0  # generated columns written
        self._set_owners(owner)

    def _set_owners(self, owner: list[int]) -> None:
        """Row -> owner (ascending, owners numbered from 0 without gaps), and the slot grid."""
        self.owner = owner
        counts = [len(list(rows)) for _, rows in groupby(owner)]
        self.m = m = max(counts)
        device = self.pos.device
        self.row_pbias = self.pbias.index_select(0, torch.tensor(owner, device=device))[:, None, :]
        if all(c == m for c in counts):
            self.slots = self.fill = None  # rows are the grid already
            return
        first = list(accumulate(counts, initial=0))  # owner -> its first row
        # A slot past an owner's samples repeats its last one: computed, never read.
        self.slots = torch.tensor([o * m + r - first[o] for r, o in enumerate(owner)], device=device)
        self.fill = torch.tensor([first[o] + min(j, counts[o] - 1) for o in range(len(counts)) for j in range(m)], device=device)

    def select(self, keep: Sequence[int]) -> None:
        index = torch.tensor(keep, device=self.pos.device)
        owners = sorted({self.owner[r] for r in keep})
        if len(owners) < self.pkv.shape[2]:  # some prompts have no sample left
            kept = torch.tensor(owners, device=index.device)
            self.pkv, self.pbias = self.pkv.index_select(2, kept), self.pbias.index_select(0, kept)
        self.chunks = [chunk.index_select(2, index) for chunk in self.chunks]
        self.pos = self.pos.index_select(0, index)
        renumber = {o: k for k, o in enumerate(owners)}
        self._set_owners([renumber[self.owner[r]] for r in keep])

    def _grow(self, rows: int) -> None:
        # 16 columns, or half the length so far: few chunks, and not too many masked columns.
        size, pkv = max(_CHUNK, self.cur // 2), self.pkv
        new = pkv.new_zeros(*pkv.shape[:2], rows, pkv.shape[3], size, pkv.shape[5])
        if self.chunks and self.chunks[-1].numel() < _MERGE_BELOW:  # small batch: fewer ops beat fewer copies
            new = torch.cat([self.chunks.pop(), new], dim=4)
        self.chunks.append(new)
        self.gbias = torch.cat([self.gbias, self.gbias.new_full((size,), self.neg)])

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        dec, c, rows, dim = self.dec, self.cur, len(tokens), self.dec.width
        if c == len(self.gbias):
            self._grow(rows)
        self.gbias[c] = 0.0
        last, col = self.chunks[-1], c - len(self.gbias) + self.chunks[-1].shape[4]
        bias = torch.cat([self.row_pbias, self.gbias.expand(rows, 1, -1)], dim=-1)  # (rows, 1, columns)
        h = dec.wte[tokens] + dec.wpe[self.pos]
        for i, layer in enumerate(dec.layers):
            l1w, l1b, aw, ab, pw, pb = layer[:6]
            qkv = torch.addmm(ab, F.layer_norm(h, (dim,), l1w, l1b, dec.eps), aw).view(rows, 3, dec.heads, -1)
            last[i, :, :, :, col] = qkv[:, 1:].transpose(0, 1)
            h = dec._mlp(torch.addmm(pb, self._attend(i, qkv[:, 0], bias), pw).add_(h), layer)
        self.cur += 1
        self.pos = self.pos + 1
        return F.layer_norm(h, (dim,), *dec.ln_f, dec.eps) @ dec.head.T

    def _attend(self, i: int, q: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s attention output (rows, width) for one query per row (rows, heads, head_dim)."""
        pkv, m, fill, slots = self.pkv, self.m, self.fill, self.slots
        rows, heads, _ = q.shape
        owners, width = pkv.shape[2], pkv.shape[4]
        # Scores against the prompt on the (owner, sample) grid, then back to rows.
        grid_q = (q if fill is None else q.index_select(0, fill)).view(owners, m, heads, -1).transpose(1, 2)
        s_prompt = torch.matmul(grid_q, pkv[i, 0].transpose(-1, -2)).transpose(1, 2).reshape(-1, heads, width)
        if slots is not None:
            s_prompt = s_prompt.index_select(0, slots)
        s_new = [torch.matmul(q[:, :, None], chunk[i, 0].transpose(-1, -2))[:, :, 0] for chunk in self.chunks]
        att = torch.softmax(torch.cat([s_prompt, *s_new], dim=-1).mul_(self.dec.scales[i]).add_(bias), dim=-1)
        a_prompt = att[..., :width] if fill is None else att[..., :width].index_select(0, fill)
        o = torch.matmul(a_prompt.reshape(owners, m, heads, width).transpose(1, 2), pkv[i, 1]).transpose(1, 2).reshape(-1, self.dec.width)
        if slots is not None:
            o = o.index_select(0, slots)
        start = width
        for chunk in self.chunks:
            end = start + chunk.shape[4]
            o = o + torch.matmul(att[:, :, None, start:end], chunk[i, 1]).view(rows, -1)
            start = end
        return o


def cache_keyword(model: Any) -> str:
    """The keyword under which this model's ``forward`` takes its KV cache: transformers 5.24 renamed
    ``past_key_values`` to ``cache`` (the old name warns until 5.40), so ask the signature."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class HFDecoder:
    """Any causal LM through its own forward and a ``DynamicCache`` (slower; the fallback)."""

    kind = "hf"

    def __init__(self, model: Any) -> None:
        self.model, self.device, self.cache_kwarg = model, model.device, cache_keyword(model)
        self.max_positions: int | None = getattr(model.config, "max_position_embeddings", None)

    def prefill(self, prompts: Sequence[Sequence[int]], counts: Sequence[int]) -> tuple[_HFSession, torch.Tensor]:
        from transformers import DynamicCache

        # Right-align the prompts so every row's next token lands in the same cache column.
        width = max(map(len, prompts))
        ids = torch.tensor([[0] * (width - len(p)) + [*p] for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        pos = (mask.cumsum(1) - 1).clamp_(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **{self.cache_kwarg: cache})
        session = _HFSession(self, cache, mask, pos[:, -1] + 1)
        owner = [p for p, count in enumerate(counts) for _ in range(count)]
        if owner != list(range(len(prompts))):
            session.select(owner)  # one prefill per prompt, copied to each of its samples
        return session, out.logits[:, -1].float().index_select(0, torch.tensor(owner, device=self.device))


class _HFSession(Session):
    """The cache object is updated in place by every forward, so the session keeps its own
    reference instead of reading it back from the output (whose field name also changed)."""

    def __init__(self, dec: HFDecoder, cache: Any, mask: torch.Tensor, pos: torch.Tensor) -> None:
        self.model, self.cache_kwarg = dec.model, dec.cache_kwarg
        self.cache, self.mask, self.pos = cache, mask, pos

    def select(self, keep: Sequence[int]) -> None:
        index = torch.tensor(keep, device=self.pos.device)
        self.cache.reorder_cache(index)
        self.mask = self.mask.index_select(0, index)
        self.pos = self.pos.index_select(0, index)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=self.pos[:, None],
                         use_cache=True, **{self.cache_kwarg: self.cache})
        self.pos = self.pos + 1
        return out.logits[:, -1].float()


def make_decoder(model: Any, fast: bool = True) -> GPT2Decoder | LlamaDecoder | HFDecoder:
    """The hand-written decoder of the model's architecture if ``fast`` and it runs the model exactly, else HF's."""
    from maker.backends.llama_decode import LlamaDecoder  # here: that module builds on this one

    if fast:
        for hand_written in (GPT2Decoder, LlamaDecoder):
            if hand_written.supports(model):
                return hand_written(model)
    return HFDecoder(model)


def decode(
    decoder: GPT2Decoder | LlamaDecoder | HFDecoder, prompts: Sequence[Sequence[int]], groups: Sequence[Group], *,
    eos: frozenset[int], generator: torch.Generator, hit_stop: Callable[[list[int]], bool] | None = None,
    aborted: Callable[[], bool] = lambda: False,
) -> tuple[list[list[int]], list[str], int]:
    """Generate every row of ``groups`` (rows in group order; every prompt must have a group).

    Returns each row's new token ids (EOS excluded), its finish reason ("stop" or "length"),
    and the number of forward passes run. A row's tokens never exceed its group's cap.
    """
    # Rows are laid out prompt by prompt, so that the samples of a prompt are neighbours.
    order = sorted(range(len(groups)), key=lambda i: groups[i].prompt)
    row_index = [i for i in order for _ in range(groups[i].n)]  # row -> index of its group
    row_group = [groups[i] for i in row_index]
    counts = [0] * len(prompts)
    for g in groups:
        counts[g.prompt] += g.n
    if not all(counts):
        raise ValueError("every prompt needs at least one row")
    caps = [g.max_tokens for g in row_group]
    out: list[list[int]] = [[] for _ in row_group]
    finish: list[str | None] = [None] * len(row_group)
    session, logits = decoder.prefill(prompts, counts)
    live = list(range(len(row_group)))  # batch position -> row
    sampler = _Sampler(row_group, live, generator, logits.device)
    passes, dead = 1, 0
    while True:
        tokens = sampler.pick(logits)
        for r, t in zip(live, tokens.tolist(), strict=True):
            if finish[r] is not None:
                continue  # finished, waiting to be dropped from the batch
            if t in eos:
                finish[r] = "stop"
            else:
                out[r].append(t)
                if hit_stop is not None and hit_stop(out[r]):
                    finish[r] = "stop"
                elif len(out[r]) >= caps[r]:
                    finish[r] = "length"
            dead += finish[r] is not None
        if dead == len(live):
            break
        if aborted():
            raise RuntimeError("decoding aborted: the backend is closing")
        # Dropping rows copies the cache, so wait until a quarter of the batch is idle.
        if 4 * dead >= len(live):
            keep = [i for i, r in enumerate(live) if finish[r] is None]
            session.select(keep)
            tokens = tokens.index_select(0, torch.tensor(keep, device=tokens.device))
            live = [live[i] for i in keep]
            sampler = _Sampler(row_group, live, generator, logits.device)
            dead = 0
        logits = session.step(tokens)
        passes += 1
    rows = sorted(range(len(row_index)), key=row_index.__getitem__)  # stable: back to group order
    return [out[r] for r in rows], [finish[r] for r in rows], passes  # type: ignore[misc]


class _Sampler:
    """Picks the next token of each live row: argmax at temperature 0, else inverse-CDF sampling
    with one uniform per row. A seeded request draws a uniform for each of its n rows every step,
    live or not, so its stream does not depend on when other rows leave the batch."""

    def __init__(self, row_group: Sequence[Group], live: Sequence[int], shared: torch.Generator, device: torch.device):
        groups = [row_group[r] for r in live]
        self.device = device
        self.greedy_only = all(g.temperature == 0 for g in groups)
        if self.greedy_only:
            return
        self.greedy = torch.tensor([g.temperature == 0 for g in groups], device=device)
        self.any_greedy = bool(self.greedy.any())
        self.inv_temp = torch.tensor([1.0 / g.temperature if g.temperature else 1.0 for g in groups], device=device)[:, None]
        # Runs of consecutive live rows of one group: (generator, rows drawn, indices kept or None).
        self.draws: list[tuple[torch.Generator, int, torch.Tensor | None]] = []
        start: dict[int, int] = {}  # group -> its first row
        for r, g in enumerate(row_group):
            start.setdefault(id(g), r)
        runs: dict[int, tuple[Group, list[int]]] = {}
        for r, g in zip(live, groups, strict=True):
            runs.setdefault(id(g), (g, []))[1].append(r - start[id(g)])
        for g, local in runs.values():
            if g.generator is not None and g.temperature > 0:
                keep = None if len(local) == g.n else torch.tensor(local, device=device)
                self.draws.append((g.generator, g.n, keep))
            else:
                self.draws.append((shared, len(local), None))

    def pick(self, logits: torch.Tensor) -> torch.Tensor:
        if self.greedy_only:
            return logits.argmax(-1)
        parts = []
        for gen, count, keep in self.draws:
            u = torch.rand(count, generator=gen, device=self.device)
            parts.append(u if keep is None else u.index_select(0, keep))
        u = parts[0] if len(parts) == 1 else torch.cat(parts)
        cdf = torch.softmax(logits * self.inv_temp, dim=-1).cumsum_(-1)
        # The first token whose cumulative probability exceeds u (scaled by the total, which
        # rounding leaves a hair off 1); zero-probability tokens are never chosen.
        picked = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0].clamp_(max=logits.shape[-1] - 1)
        return torch.where(self.greedy, logits.argmax(-1), picked) if self.any_greedy else picked
