"""Plain GPT-2 checkpoint folders loaded without transformers, for a fast start.

Importing transformers and building a ``GPT2LMHeadModel`` costs about two seconds of start-up on
this machine's two cores, more than a short run spends decoding. ``GPT2Decoder`` needs only the
weights and a few config numbers, and ``Codec`` only the Rust tokenizer, so a folder that holds a
plain GPT-2 checkpoint (``config.json``, ``model.safetensors``, ``tokenizer.json``) is read
directly with ``safetensors`` and ``tokenizers``. ``read`` returns None for anything else (an
adapter, another architecture, a tokenizer whose wrapper could behave differently from its Rust
core), and the backend then loads the folder through transformers as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# Tokenizer wrappers that add nothing to the Rust tokenizer saved in tokenizer.json: their
# special tokens come from its post-processor, and Codec decodes without clean-up.
_PLAIN_TOKENIZERS = ("PreTrainedTokenizerFast", "GPT2TokenizerFast", "TokenizersBackend")
# Wrapper settings that change what encode or decode returns.
_WRAPPER_SETTINGS = ("add_bos_token", "add_eos_token", "add_prefix_space", "do_lower_case", "legacy")
_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # what GPT2Decoder computes itself


@dataclass(frozen=True)
class Checkpoint:
    """What the backend needs of a plain GPT-2 folder: its config, weights, tokenizer and end tokens."""

    config: dict[str, Any]
    weights: dict[str, torch.Tensor]  # HF's names ("transformer.h.0.attn.c_attn.weight"), the head included
    tokenizer: Any  # tokenizers.Tokenizer
    eos: frozenset[int]


def read(folder: Path, device: torch.device) -> Checkpoint | None:
    """The checkpoint in ``folder`` if it is plain GPT-2 in float32 and its tokenizer is plain; else None."""
    files = {name: folder / name for name in ("config.json", "model.safetensors", "tokenizer.json")}
    if (folder / "adapter_config.json").exists() or not all(f.is_file() for f in files.values()):
        return None
    config = _json(folder / "config.json")
    tokenizer_config = _json(folder / "tokenizer_config.json")
    if config.get("model_type") != "gpt2" or config.get("architectures") != ["GPT2LMHeadModel"]:
        return None
    if config.get("add_cross_attention") or config.get("activation_function", "gelu_new") not in _ACTIVATIONS:
        return None
    if tokenizer_config.get("tokenizer_class") not in _PLAIN_TOKENIZERS:
        return None
    if any(tokenizer_config.get(setting) for setting in _WRAPPER_SETTINGS):
        return None
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    if (folder / "special_tokens_map.json").exists():  # the wrapper may take its EOS from there: leave it to transformers
        return None
    weights = load_file(files["model.safetensors"], device=str(device))
    if any(w.dtype != torch.float32 for w in weights.values()) or not _names_match(weights, config):
        return None
    if "lm_head.weight" not in weights:
        if config.get("tie_word_embeddings", True) is False:
            return None
        weights["lm_head.weight"] = weights["transformer.wte.weight"]
    tokenizer = Tokenizer.from_file(str(files["tokenizer.json"]))
    tokenizer.no_padding()  # the wrapper pads and truncates only when asked; Codec never asks
    tokenizer.no_truncation()
    eos = _eos(tokenizer, tokenizer_config, _json(folder / "generation_config.json"), config)
    if not eos:  # a reply that cannot end: let transformers' loader decide what ends it
        return None
    return Checkpoint(config, weights, tokenizer, eos)


def _names_match(weights: dict[str, torch.Tensor], config: dict[str, Any]) -> bool:
    """Whether ``weights`` hold every tensor ``GPT2Decoder`` reads, under HF's names."""
    needed = {f"transformer.{n}.weight" for n in ("wte", "wpe", "ln_f")} | {"transformer.ln_f.bias"}
    parts = ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj")
    needed |= {f"transformer.h.{i}.{p}.{w}" for i in range(config.get("n_layer", 12)) for p in parts for w in ("weight", "bias")}
    return needed <= weights.keys()


def _eos(tokenizer: Any, tokenizer_config: dict[str, Any], generation: dict[str, Any],
         config: dict[str, Any]) -> frozenset[int]:
    """The tokenizer's EOS and the generation config's (else the model config's), as ``maker.backends.hf``
    takes them from transformers."""
    named = tokenizer_config.get("eos_token")
    if isinstance(named, dict):  # an AddedToken written out
        named = named.get("content")
    configured = generation.get("eos_token_id", config.get("eos_token_id"))
    ids = [tokenizer.token_to_id(named) if named else None, *(configured if isinstance(configured, list) else [configured])]
    return frozenset(i for i in ids if i is not None)


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # transformers' loader reports a broken file the way it always has
    return loaded if isinstance(loaded, dict) else {}
