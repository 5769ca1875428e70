"""Lean batched decoding for the in-process transformers backend (``maker.backends.hf``).

A decoder prefills a batch of distinct prompts once each and returns a *session* with a row per
sample: ``extend`` feeds every row some tokens in one forward pass, ``accept`` keeps some of
them, ``select`` drops finished rows. The decoders (``make_decoder`` picks one):

- ``GPT2Decoder`` runs GPT-2 weights by hand. At the size of our microagents the cost of HF
  ``generate`` is its per-step Python machinery and cache handling, not arithmetic; a short
  hand-written step over a preallocated cache, with a prompt's cache shared by its samples, is
  several times faster at small batches and about twice as fast at large ones. Only its
  arithmetic is here: the prefill and the session are those of ``maker.backends.kv_session``.
- ``LlamaDecoder`` (``maker.backends.llama_decode``) does the same for Llama and Qwen2 models: the
  shared base and adapters merged into it.
- ``HFDecoder`` drives any causal LM's own forward with a ``DynamicCache``: the fallback (no drafts).

``decode`` is the sampling loop over a session, greedy or at a temperature, up to EOS, a stop or
the cap. With a ``Drafter`` (``maker.backends.drafting``) it is *drafted*: each pass feeds a row
its pending token and a guess at the next ones, and keeps the guessed tokens the model draws
itself, with the row's own uniform for each position (``maker.backends.sampler``), so replies
are those of one-token-at-a-time decoding, in fewer passes: exactly, up to floating-point
rounding (the passes' matmuls have other shapes; the tests check identity on CPU float32).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from maker.backends.drafting import Drafter, DraftHook
from maker.backends.kv_session import KVDecoder, Workspace
from maker.backends.llama_decode import LlamaDecoder
from maker.backends.sampler import Group, Sampler  # Group is imported from here too (maker.backends.hf)

_GELU_2C = 2 * math.sqrt(2 / math.pi)


class GPT2Decoder(KVDecoder):
    """GPT-2 (``GPT2LMHeadModel``) run by hand; matches HF's greedy output token for token."""

    kind = "gpt2"

    @staticmethod
    def supports(model: Any) -> bool:
        return type(model).__name__ == "GPT2LMHeadModel" and not getattr(model.config, "add_cross_attention", False)

    @classmethod
    def from_model(cls, model: Any) -> GPT2Decoder:
        """The decoder of a loaded ``GPT2LMHeadModel`` (its weights are shared, not copied)."""
        weights = dict(model.named_parameters())
        weights["lm_head.weight"] = model.lm_head.weight  # tied to wte, so named_parameters lists it once
        return cls(model.config.to_dict(), weights)

    def __init__(self, config: Mapping[str, Any], weights: Mapping[str, torch.Tensor]) -> None:
        """``config`` is a GPT-2 ``config.json``; ``weights`` holds HF's parameter names, ``lm_head.weight`` included."""
        layers = config.get("n_layer", 12)
        self.device = weights["transformer.wte.weight"].device
        self.max_positions: int = config.get("n_positions", 1024)
        self.heads, self.width, self.eps = config.get("n_head", 12), config.get("n_embd", 768), config.get("layer_norm_epsilon", 1e-5)
        self.kv_heads, self.head_dim = self.heads, self.width // self.heads
        self.workspace = Workspace()
        self.wte, self.wpe, self.head = (weights[f"{n}.weight"] for n in ("transformer.wte", "transformer.wpe", "lm_head"))
        self.ln_f = (weights["transformer.ln_f.weight"], weights["transformer.ln_f.bias"])
        names = ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj")
        self.layers = [
            tuple(weights[f"transformer.h.{i}.{name}.{part}"] for name in names for part in ("weight", "bias"))
            for i in range(layers)
        ]
        self.scales = [
            (self.head_dim**-0.5 if config.get("scale_attn_weights", True) else 1.0)
            / (i + 1 if config.get("scale_attn_by_inverse_layer_idx", False) else 1)
            for i in range(layers)
        ]
        activation = config.get("activation_function", "gelu_new")
        if activation in ("gelu_new", "gelu_pytorch_tanh"):
            self.act: Callable[[torch.Tensor], torch.Tensor] = _gelu_tanh
        else:
            from transformers.activations import ACT2FN

            self.act = ACT2FN[activation]

    # --- the arithmetic the prefill and the session run (maker.backends.kv_session.KVDecoder) ---
    def embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.wte[tokens] + self.wpe[positions]

    def qkv(self, h: torch.Tensor, layer: int, positions: torch.Tensor) -> torch.Tensor:
        l1w, l1b, aw, ab = self.layers[layer][:4]
        return torch.addmm(ab, F.layer_norm(h, (self.width,), l1w, l1b, self.eps), aw).view(-1, 3 * self.heads, self.head_dim)

    def finish_layer(self, attended: torch.Tensor, h: torch.Tensor, layer: int) -> torch.Tensor:
        pw, pb = self.layers[layer][4:6]
        return self._mlp(torch.addmm(pb, attended, pw).add_(h), self.layers[layer])

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(h, (self.width,), *self.ln_f, self.eps) @ self.head.T

    def scale(self, layer: int) -> float:
        return self.scales[layer]

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


def cache_keyword(model: Any) -> str:
    """The keyword under which this model's ``forward`` takes its KV cache: transformers 5.24 renamed
    ``past_key_values`` to ``cache`` (the old name warns until 5.40), so ask the signature."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class HFDecoder:
    """Any causal LM through its own forward and a ``DynamicCache`` (slower; the fallback)."""

    kind = "hf"
    drafts = False  # HF's own cache cannot rewind one row: decode takes no drafts with it

    def __init__(self, model: Any) -> None:
        self.model, self.device, self.cache_kwarg = model, model.device, cache_keyword(model)
        self.max_positions: int | None = getattr(model.config, "max_position_embeddings", None)

    def prefill(self, prompts: Sequence[Sequence[int]], counts: Sequence[int],
                drafts: Sequence[Sequence[int]] | None = None) -> tuple[_HFSession, torch.Tensor]:
        """As ``KVDecoder.prefill``, without opening drafts (any given must be empty)."""
        from transformers import DynamicCache

        if drafts is not None and any(drafts):
            raise ValueError("the HF fallback session takes no drafts")

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
        return session, out.logits[:, -1:].float().index_select(0, torch.tensor(owner, device=self.device))


class _HFSession:
    """The cache object is updated in place by every forward, so the session keeps its own
    reference instead of reading it back from the output (whose field name also changed)."""

    def __init__(self, dec: HFDecoder, cache: Any, mask: torch.Tensor, pos: torch.Tensor) -> None:
        self.model, self.cache_kwarg, self.limit = dec.model, dec.cache_kwarg, dec.max_positions
        self.cache, self.mask, self.pos = cache, mask, pos

    def select(self, keep: Sequence[int]) -> None:
        index = torch.tensor(keep, device=self.pos.device)
        self.cache.reorder_cache(index)
        self.mask = self.mask.index_select(0, index)
        self.pos = self.pos.index_select(0, index)

    def extend(self, tokens: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """One token per row (tokens (rows, 1)): its logits (rows, 1, vocab). HF's cache cannot rewind one
        row, so this session takes no drafts, and every token fed is kept."""
        if tokens.shape[1] != 1 or (lengths is not None and not set(lengths) <= {0, 1}):
            raise ValueError("the HF fallback session extends rows one token at a time")
        # Its cache grows for every row; a row given length 0 (finished) is fed a token anyway, at a
        # position clamped to the model's last, and its logits are not read.
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        position = self.pos if self.limit is None else self.pos.clamp(max=self.limit - 1)
        out = self.model(input_ids=tokens, attention_mask=self.mask, position_ids=position[:, None],
                         use_cache=True, **{self.cache_kwarg: self.cache})
        self.pos = self.pos + 1
        return out.logits[:, -1:].float()

    def accept(self, kept: Sequence[int]) -> None:
        """Nothing to rewind: ``extend`` took one token per row, which stays (a finished row's too)."""


def make_decoder(model: Any, fast: bool = True) -> KVDecoder | HFDecoder:
    """The hand-written decoder of the model's architecture if ``fast`` and it runs the model exactly, else HF's."""
    if fast:
        if GPT2Decoder.supports(model):
            return GPT2Decoder.from_model(model)
        if LlamaDecoder.supports(model):
            return LlamaDecoder(model)
    return HFDecoder(model)


def decode(
    decoder: KVDecoder | HFDecoder, prompts: Sequence[Sequence[int]], groups: Sequence[Group], *,
    eos: frozenset[int], generator: torch.Generator, hit_stop: Callable[[list[int], tuple[str, ...]], bool] | None = None,
    aborted: Callable[[], bool] = lambda: False, drafter: Drafter | None = None,
) -> tuple[list[list[int]], list[str], int]:
    """Generate every row of ``groups`` (rows in group order; every prompt must have a group).

    With a ``drafter`` (hand-written decoders only), each forward pass feeds a row its pending token
    and a draft, and keeps the drafted tokens the model draws itself: the replies are the same as
    without one, in fewer passes. Returns each row's new token ids (EOS excluded), its finish reason
    ("stop" or "length"), and the number of forward passes run. A row's tokens never exceed its cap.
    ``hit_stop(tokens, stops)`` says whether a row's tokens so far contain one of its group's stop strings.
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
    if not decoder.drafts:
        drafter = None
    caps = [g.max_tokens for g in row_group]
    out: list[list[int]] = [[] for _ in row_group]
    finish: list[str | None] = [None] * len(row_group)

    def commit(r: int, drawn: list[int]) -> None:
        """Append the tokens row ``r`` drew, up to its end (EOS, a stop, the cap)."""
        for t in drawn:
            if t in eos:
                finish[r] = "stop"
            else:
                out[r].append(t)
                if hit_stop is not None and row_group[r].stop and hit_stop(out[r], row_group[r].stop):
                    finish[r] = "stop"
                elif len(out[r]) >= caps[r]:
                    finish[r] = "length"
            if finish[r] is not None:
                if drafter is not None and finish[r] == "stop":
                    drafter.finished(row_group[r].prompt, out[r])
                return

    def keep_agreed(logits: torch.Tensor, drafts: list[list[int]], pending: int) -> list[int]:
        """Each live row draws from ``logits`` (after what it was fed: its pending token if ``pending``,
        then its draft) and commits the draft tokens the model drew itself and the token after them.
        Returns how many fed tokens each row keeps: the pending one and the agreed drafts."""
        kept = []
        for r, d, drawn in zip(live, drafts, sampler.pick(logits, [len(out[r]) for r in live]).tolist(), strict=True):
            if finish[r] is not None:  # fed nothing
                kept.append(0)
                continue
            agree = 0  # the draft tokens the model drew itself
            while agree < len(d) and drawn[agree] == d[agree]:
                agree += 1
            commit(r, drawn[: agree + 1])
            if drafter is not None:
                drafter.agreed(agree)
            kept.append(pending + agree)
        return kept

    # Each prompt's opening draft runs with it in the prefill, so the first pass already checks the
    # start of its replies (rows are laid out prompt by prompt: row r's prompt is its owner).
    openings = _openings(drafter, row_group, counts)
    session, logits = decoder.prefill(prompts, counts, openings)
    sampler = Sampler(row_group, generator, logits.device)
    live = list(range(len(row_group)))  # batch position -> row
    session.accept(keep_agreed(logits, [openings[g.prompt] for g in row_group], pending=0))
    passes = 1
    while True:
        dead = sum(finish[r] is not None for r in live)
        if dead == len(live):
            break
        if aborted():
            raise RuntimeError("decoding aborted: the backend is closing")
        # Dropping rows copies the cache, so wait until a quarter of the batch is idle.
        if 4 * dead >= len(live):
            keep = [i for i, r in enumerate(live) if finish[r] is None]
            session.select(keep)
            sampler.select(keep)
            live = [live[i] for i in keep]
        # Each row's pending token (drawn, not yet in the cache), then its draft.
        drafts = [[] if drafter is None or finish[r] is not None
                  else drafter.propose(r, row_group[r].prompt, row_group[r].draft, out[r], caps[r] - len(out[r]) - 1)
                  for r in live]
        width = 1 + max(map(len, drafts))
        inputs = [[out[r][-1] if out[r] else 0, *d, *[0] * (width - 1 - len(d))] for r, d in zip(live, drafts, strict=True)]
        # A finished row waiting to be dropped is fed nothing: it may sit at the model's last position.
        lengths = [0 if finish[r] is not None else 1 + len(d) for r, d in zip(live, drafts, strict=True)]
        logits = session.extend(torch.tensor(inputs, device=logits.device), lengths)
        session.accept(keep_agreed(logits, drafts, pending=1))
        passes += 1
    rows = sorted(range(len(row_index)), key=row_index.__getitem__)  # stable: back to group order
    return [out[r] for r in rows], [finish[r] for r in rows], passes  # type: ignore[misc]


def _openings(drafter: Drafter | None, row_group: Sequence[Group], counts: Sequence[int]) -> list[list[int]]:
    """Each prompt's opening draft (none without a drafter), no longer than leaves each of its rows room to draw a token."""
    if drafter is None:
        return [[] for _ in counts]
    hooks: dict[int, DraftHook | None] = {}
    room: dict[int, int] = {}  # prompt -> the longest draft after which each of its rows can still draw a token
    for g in row_group:
        hooks.setdefault(g.prompt, g.draft)
        room[g.prompt] = min(room.get(g.prompt, g.max_tokens), g.max_tokens - 1)
    return [drafter.opening(p, hooks[p], room[p], counts[p]) for p in range(len(counts))]
