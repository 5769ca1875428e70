"""Hand-written batched decoding for Llama-family models (``LlamaForCausalLM``, ``Qwen2ForCausalLM``).

``LlamaDecoder`` is the Llama counterpart of ``maker.backends.hf_decode.GPT2Decoder`` and keeps its
design: the prompt tokens run packed through the matmuls and only attention sees the padded grid;
each distinct prompt is prefilled once and its cache is shared by its samples. Both run the same
session (``maker.backends.kv_session.KVSession``: the cache, drafts, shared rows), which calls
back into the decoder for the model's own arithmetic. What differs lives here: RMSNorm, rotary position embeddings (HF's default rope, rotate-half convention),
grouped-query attention (the cache holds the key/value heads only), and the SwiGLU MLP.

Qwen2 is Llama with biases on q/k/v; any bias a checkpoint has is applied, so Llama's
``attention_bias`` and ``mlp_bias`` run too. ``LlamaDecoder.supports`` refuses what would not
match HF's forward (scaled rope, sliding windows, adapters, weights that are not float32), and
``make_decoder`` then falls back to ``HFDecoder``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from maker.backends.kv_session import KVSession, Workspace, open_session, tail_index

_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")


class _Layer(NamedTuple):
    """One decoder layer's weights: the model's own tensors, except q/k/v and gate/up, each fused
    into one matmul (copies taken when the decoder is built: a decoder is made per loaded model)."""

    attn_norm: torch.Tensor
    qkv: torch.Tensor  # (heads + 2 kv_heads) * head_dim rows: q, then k, then v
    qkv_bias: torch.Tensor | None
    out: torch.Tensor
    out_bias: torch.Tensor | None
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor  # 2 * intermediate rows: gate, then up
    gate_up_bias: torch.Tensor | None
    down: torch.Tensor
    down_bias: torch.Tensor | None


class _PromptGrid(NamedTuple):
    """Where packed prompt tokens sit on the (owner, width) grid, prompts right-aligned (left-padded)
    as in ``GPT2Decoder.prefill``: every prompt's next token then falls in the same cache column."""

    pos: torch.Tensor  # each packed token's position in its own prompt: rotary positions start at 0 per row
    to_grid: torch.Tensor  # grid slot -> packed token (a padding slot repeats its row's first token)
    from_grid: torch.Tensor  # packed token -> grid slot
    valid: torch.Tensor  # (owners, width): True where the grid holds a prompt token


def _prompt_grid(lengths: Sequence[int], device: torch.device) -> _PromptGrid:
    width = max(lengths)
    starts = list(accumulate(lengths, initial=0))  # prompt -> its first packed token
    pad = [width - n for n in lengths]

    def tensor(values: list[Any]) -> torch.Tensor:
        return torch.tensor(values, device=device)

    return _PromptGrid(
        pos=tensor([j for n in lengths for j in range(n)]),
        to_grid=tensor([starts[o] + max(0, j - p) for o, p in enumerate(pad) for j in range(width)]),
        from_grid=tensor([o * width + p + j for o, p in enumerate(pad) for j in range(width - p)]),
        valid=tensor([[j >= p for j in range(width)] for p in pad]),
    )


def _fuse(*linears: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One weight (and bias, if the layers have them) for several ``nn.Linear`` fed the same input."""
    weight = torch.cat([lin.weight for lin in linears]).detach()
    biases = [lin.bias for lin in linears]
    return weight, None if biases[0] is None else torch.cat(biases).detach()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x`` (tokens, heads, head_dim): HF's ``apply_rotary_pos_emb``, same ops."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _rope_is_default(model: Any) -> bool:
    """Only the unscaled rope over the whole head: other rope types rescale frequencies or
    positions (and "dynamic" changes them with the sequence length)."""
    cfg, rotary = model.config, model.model.rotary_emb
    # transformers 5 keeps the rope settings in ``rope_parameters`` (``rope_scaling`` is an alias);
    # 4.x kept ``rope_theta`` beside a ``rope_scaling`` that was None when unscaled.
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads  # as HF's rope reads it
    return (
        rope_type == "default" and getattr(rotary, "rope_type", "default") == "default"
        and getattr(rotary, "attention_scaling", 1.0) == 1.0 and 2 * rotary.inv_freq.numel() == head_dim
    )


class LlamaDecoder:
    """Llama and Qwen2 run by hand; matches HF's greedy output token for token."""

    kind = "llama"
    drafts = True  # its session (KVSession) rewinds rejected draft tokens

    @staticmethod
    def supports(model: Any) -> bool:
        if type(model).__name__ not in _ARCHITECTURES:  # a peft wrapper has another class name
            return False
        cfg, layers = model.config, model.model.layers
        linears = [m for layer in layers for m in (*_attention_linears(layer), *_mlp_linears(layer))]
        return (
            # Adapters injected into the layers (peft's LoRA) replace nn.Linear by their own modules.
            all(type(m) is torch.nn.Linear for m in [*linears, model.lm_head])
            and all(p.dtype == torch.float32 for p in model.parameters())
            and _rope_is_default(model)
            and not getattr(cfg, "use_sliding_window", False)
            and all(t == "full_attention" for t in getattr(cfg, "layer_types", None) or ())
            and len(layers) == cfg.num_hidden_layers
            # q, k and v all with a bias or all without: the fused projection needs one or the other.
            and all(len({m.bias is None for m in _attention_linears(layer)[:3]}) == 1 for layer in layers)
            and all(len({m.bias is None for m in _mlp_linears(layer)[:2]}) == 1 for layer in layers)
        )

    def __init__(self, model: Any) -> None:
        from transformers.activations import ACT2FN

        cfg, body = model.config, model.model
        attn = body.layers[0].self_attn
        self.device = body.embed_tokens.weight.device
        self.max_positions: int = cfg.max_position_embeddings
        self.width, self.eps = cfg.hidden_size, cfg.rms_norm_eps
        self.heads, self.kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, attn.head_dim
        self.attention_scale: float = attn.scaling
        self.embed_weight, self.norm, self.head = body.embed_tokens.weight, body.norm.weight, model.lm_head.weight
        self.layers = [self._layer(layer) for layer in body.layers]
        self.workspace = Workspace()
        self.act: Callable[[torch.Tensor], torch.Tensor] = ACT2FN[cfg.hidden_act]
        # Rotary tables for every position, computed as HF computes them per call (so equal bit for bit).
        positions = torch.arange(self.max_positions, device=self.device, dtype=torch.float32)
        freqs = positions[:, None] * body.rotary_emb.inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = angles.cos(), angles.sin()

    @staticmethod
    def _layer(layer: Any) -> _Layer:
        q, k, v, o = _attention_linears(layer)
        gate, up, down = _mlp_linears(layer)
        qkv, qkv_bias = _fuse(q, k, v)
        gate_up, gate_up_bias = _fuse(gate, up)
        return _Layer(layer.input_layernorm.weight, qkv, qkv_bias, o.weight, o.bias,
                      layer.post_attention_layernorm.weight, gate_up, gate_up_bias, down.weight, down.bias)

    def prefill(self, prompts: Sequence[Sequence[int]], counts: Sequence[int],
                drafts: Sequence[Sequence[int]] | None = None) -> tuple[KVSession, torch.Tensor]:
        """As ``GPT2Decoder.prefill``: the session, and each row's logits (rows, T, vocab) after its
        prompt and after each token of its prompt's opening draft."""
        device, heads, kv, hd = self.device, self.heads, self.kv_heads, self.head_dim
        full = prompts if drafts is None else [[*p, *d] for p, d in zip(prompts, drafts, strict=True)]
        owners, width = len(full), max(map(len, full))
        lengths = [len(p) for p in full]
        grid = _prompt_grid(lengths, device)
        neg = torch.finfo(self.embed_weight.dtype).min
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        seen = causal & grid.valid[:, None, None, :]  # (owners, 1, query, key)
        mask = torch.zeros(owners, 1, width, width, device=device).masked_fill_(~seen, neg)
        cos, sin = self.cos.index_select(0, grid.pos)[:, None], self.sin.index_select(0, grid.pos)[:, None]
        pkv = torch.empty(len(self.layers), 2, owners, kv, width, hd, device=device)
        h = self.embed_weight[torch.tensor([t for p in full for t in p], device=device)]
        for i, layer in enumerate(self.layers):
            qkv = self._qkv(h, layer, cos, sin)  # rotated q and k, then v
            qkv = qkv.index_select(0, grid.to_grid).view(owners, width, -1, hd).transpose(1, 2)
            q, k, v = qkv.split((heads, kv, kv), dim=1)
            pkv[i, 0], pkv[i, 1] = k, v
            if heads != kv:  # query head j reads key/value head j // groups, as HF's repeat_kv
                k, v = k.repeat_interleave(heads // kv, dim=1), v.repeat_interleave(heads // kv, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.attention_scale)
            a = a.transpose(1, 2).reshape(-1, heads * hd).index_select(0, grid.from_grid)
            h = self._mlp(F.linear(a, layer.out, layer.out_bias).add_(h), layer)
        drafted = None if drafts is None else [len(d) for d in drafts]
        logits = self.logits(h.index_select(0, tail_index(lengths, drafted, device)))
        pbias = torch.zeros(owners, width, device=device).masked_fill_(~grid.valid, neg)
        # A row's next position is its own prompt's length, whatever the padding before it.
        return open_session(self, pkv, pbias, counts, [len(p) for p in prompts], drafted, logits)

    # --- the arithmetic a KVSession runs (maker.backends.kv_session.Arithmetic) ----------------
    def embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.embed_weight[tokens]

    def qkv(self, h: torch.Tensor, layer: int, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cos, sin = self.cos.index_select(0, positions)[:, None], self.sin.index_select(0, positions)[:, None]
        q, k, v = self._qkv(h, self.layers[layer], cos, sin).split((self.heads, self.kv_heads, self.kv_heads), dim=1)
        return q, k, v

    def finish_layer(self, attended: torch.Tensor, h: torch.Tensor, layer: int) -> torch.Tensor:
        weights = self.layers[layer]
        return self._mlp(F.linear(attended, weights.out, weights.out_bias).add_(h), weights)

    def scale(self, layer: int) -> float:
        return self.attention_scale

    def _qkv(self, h: torch.Tensor, layer: _Layer, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Queries, keys and values (tokens, heads + 2 kv_heads, head_dim) of the residual stream
        ``h`` (tokens, width), with queries and keys rotated to their tokens' positions."""
        x = F.rms_norm(h, (self.width,), layer.attn_norm, self.eps)
        qkv = F.linear(x, layer.qkv, layer.qkv_bias).view(len(h), -1, self.head_dim)
        rotated = self.heads + self.kv_heads
        qkv[:, :rotated] = _rotate(qkv[:, :rotated], cos, sin)
        return qkv

    def _mlp(self, h: torch.Tensor, layer: _Layer) -> torch.Tensor:
        """The residual stream ``h`` (tokens, width) after the layer's SwiGLU MLP."""
        x = F.rms_norm(h, (self.width,), layer.mlp_norm, self.eps)
        gate, up = F.linear(x, layer.gate_up, layer.gate_up_bias).chunk(2, dim=-1)
        return F.linear(self.act(gate) * up, layer.down, layer.down_bias).add_(h)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(h, (self.width,), self.norm, self.eps) @ self.head.T


def _attention_linears(layer: Any) -> tuple[Any, Any, Any, Any]:
    a = layer.self_attn
    return a.q_proj, a.k_proj, a.v_proj, a.o_proj


def _mlp_linears(layer: Any) -> tuple[Any, Any, Any]:
    m = layer.mlp
    return m.gate_proj, m.up_proj, m.down_proj
