"""Hand-written batched decoding for Llama-family models (``LlamaForCausalLM``, ``Qwen2ForCausalLM``).

``LlamaDecoder`` is the Llama counterpart of ``maker.backends.hf_decode.GPT2Decoder``: both run the
same prefill and session (``maker.backends.kv_session``: each distinct prompt prefilled once, its
cache shared by its samples, drafts), which call back into the decoder for the model's own
arithmetic. What differs lives here: RMSNorm, rotary position embeddings (HF's default rope,
rotate-half convention), grouped-query attention (the cache holds the key/value heads only), and
the SwiGLU MLP.

Qwen2 is Llama with biases on q/k/v; any bias a checkpoint has is applied, so Llama's
``attention_bias`` and ``mlp_bias`` run too. ``LlamaDecoder.supports`` refuses what would not
match HF's forward (scaled rope, sliding windows, adapters, weights that are not float32), and
``make_decoder`` then falls back to ``HFDecoder``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from maker.backends.kv_session import KVDecoder, Workspace

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


class LlamaDecoder(KVDecoder):
    """Llama and Qwen2 run by hand; matches HF's greedy output token for token."""

    kind = "llama"

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
        self._rotary_at: tuple[torch.Tensor | None, torch.Tensor, torch.Tensor] = (None, self.cos, self.sin)

    @staticmethod
    def _layer(layer: Any) -> _Layer:
        q, k, v, o = _attention_linears(layer)
        gate, up, down = _mlp_linears(layer)
        qkv, qkv_bias = _fuse(q, k, v)
        gate_up, gate_up_bias = _fuse(gate, up)
        return _Layer(layer.input_layernorm.weight, qkv, qkv_bias, o.weight, o.bias,
                      layer.post_attention_layernorm.weight, gate_up, gate_up_bias, down.weight, down.bias)

    # --- the arithmetic the prefill and the session run (maker.backends.kv_session.KVDecoder) ---
    def embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.embed_weight[tokens]

    def qkv(self, h: torch.Tensor, layer: int, positions: torch.Tensor) -> torch.Tensor:
        """With queries and keys rotated to their tokens' positions."""
        weights = self.layers[layer]
        qkv = F.linear(F.rms_norm(h, (self.width,), weights.attn_norm, self.eps), weights.qkv, weights.qkv_bias)
        qkv = qkv.view(h.shape[0], -1, self.head_dim)
        rotated = self.heads + self.kv_heads
        qkv[:, :rotated] = _rotate(qkv[:, :rotated], *self._rotary(positions))
        return qkv

    def finish_layer(self, attended: torch.Tensor, h: torch.Tensor, layer: int) -> torch.Tensor:
        weights = self.layers[layer]
        return self._mlp(F.linear(attended, weights.out, weights.out_bias).add_(h), weights)

    def scale(self, layer: int) -> float:
        return self.attention_scale

    def _rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary cos and sin (tokens, 1, head_dim) at ``positions``. Every layer of a pass asks
        with the same positions tensor, so the tables of the latest one are kept."""
        if self._rotary_at[0] is not positions:
            cos, sin = self.cos.index_select(0, positions)[:, None], self.sin.index_select(0, positions)[:, None]
            self._rotary_at = (positions, cos, sin)
        return self._rotary_at[1], self._rotary_at[2]

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
