"""Sparse autoencoders for SAE-tuned adapters (``maker train --method sae-lora``).

After Resa (arXiv 2506.09967): a TopK sparse autoencoder is trained on one layer's activations of a
*source* microagent that has the skill, on the task's prompt-and-reply pairs; it is then inserted,
frozen, at that layer of the *target* (the base being adapted), and LoRA is trained with it in the
path; for serving it is removed and only the adapter is kept.

The SAE is our own (``TopKSAE``, about forty lines) rather than sae-lens: sae-lens trains on
TransformerLens hook points of models it knows, while ours are 128-wide Llama models loaded by
transformers, whose residual stream a forward hook reads and replaces directly (``SAEInsert``).

- ``collect_activations``: the source's residual stream after a layer, at every real token.
- ``train_sae``: TopK (k active features per token), decoder columns of unit norm, Adam on the
  reconstruction error; reports the fraction of variance left unexplained and the dead features.
- ``SAEInsert``: a forward hook that replaces the layer's output by its reconstruction while
  ``active`` (off for held-out scoring and reference passes: those are what serving computes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from maker.errors import ConfigError

SAE_FILE = "sae.pt"  # beside the adapter, for the record and for resuming; never served


class TopKSAE(nn.Module):
    """x -> decoder(topk(relu(encoder(x - b_dec)))) + b_dec, k features active per token."""

    def __init__(self, width: int, features: int, k: int) -> None:
        super().__init__()
        if not 0 < k <= features:
            raise ConfigError(f"the SAE needs 0 < k <= features, got k = {k}, features = {features}")
        self.k = k
        self.encoder = nn.Linear(width, features)
        self.decoder = nn.Linear(features, width, bias=False)
        self.b_dec = nn.Parameter(torch.zeros(width))
        with torch.no_grad():  # the decoder starts as the encoder's transpose, with unit columns
            self.decoder.weight.copy_(F.normalize(self.encoder.weight.T.clone(), dim=0))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.encoder(x - self.b_dec))
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, top.values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x)) + self.b_dec


def block_count(model: Any) -> int:
    """How many transformer blocks ``model`` has (an SAE's layer is one of them)."""
    return len(_layers(model))


def _layers(model: Any) -> Any:
    """The model's list of transformer blocks (Llama's ``model.layers``, GPT-2's ``transformer.h``), through any wrapper."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and (name.endswith("layers") or name.endswith(".h")):
            return module
    raise ConfigError(f"cannot find the transformer blocks of {type(model).__name__} to place an SAE in")


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


class SAEInsert:
    """The SAE's reconstruction in place of the output of block ``layer`` of ``model``, while ``active``."""

    def __init__(self, model: Any, layer: int, sae: TopKSAE) -> None:
        blocks = _layers(model)
        if not 0 <= layer < len(blocks):
            raise ConfigError(f"the SAE layer must be in 0..{len(blocks) - 1} for this model, got {layer}")
        self.sae, self.active = sae, True
        self.handle = blocks[layer].register_forward_hook(self._replace)

    def _replace(self, module: Any, inputs: Any, output: Any) -> Any:
        if not self.active:
            return None
        rebuilt = self.sae(_hidden(output))
        return (rebuilt, *output[1:]) if isinstance(output, tuple) else rebuilt

    def remove(self) -> None:
        self.handle.remove()


@torch.no_grad()
def collect_activations(model: Any, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], layer: int) -> torch.Tensor:
    """(tokens, width): the output of block ``layer`` at every unpadded token of ``batches`` ((ids, mask) pairs)."""
    caught: list[torch.Tensor] = []
    handle = _layers(model)[layer].register_forward_hook(lambda m, i, o: caught.append(_hidden(o)))
    try:
        rows = []
        for ids, mask in batches:
            caught.clear()
            model(input_ids=ids, attention_mask=mask)
            rows.append(caught[0][mask.bool()])
    finally:
        handle.remove()
    return torch.cat(rows)


def train_sae(activations: torch.Tensor, features: int, k: int, seconds: float, *, batch: int = 4096,
              lr: float = 1e-3, seed: int = 0) -> tuple[TopKSAE, dict[str, Any]]:
    """A TopK SAE fit to ``activations`` for ``seconds`` of wall time; and its numbers."""
    torch.manual_seed(seed)
    width = activations.shape[1]
    sae = TopKSAE(width, features, k)
    with torch.no_grad():
        sae.b_dec.copy_(activations.mean(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    variance = (activations - activations.mean(0)).pow(2).sum(-1).mean()
    began, steps = time.perf_counter(), 0
    while time.perf_counter() - began < seconds or steps == 0:
        x = activations[torch.randint(len(activations), (min(batch, len(activations)),))]
        loss = (sae(x) - x).pow(2).sum(-1).mean() / variance
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # unit decoder columns: a feature's size lives in its activation
            sae.decoder.weight.copy_(F.normalize(sae.decoder.weight, dim=0))
        steps += 1
    sae.requires_grad_(False)
    with torch.no_grad():
        sample = activations[:65536]
        codes = sae.encode(sample)
        unexplained = ((sae(sample) - sample).pow(2).sum(-1).mean() / variance).item()
        dead = int((codes.abs().sum(0) == 0).sum())
    return sae, {"width": width, "features": features, "k": k, "tokens": len(activations), "steps": steps,
                 "seconds": round(time.perf_counter() - began, 1), "fraction_unexplained": round(unexplained, 5),
                 "dead_features": dead}


def save_sae(sae: TopKSAE, layer: int, numbers: dict[str, Any], folder: Path) -> None:
    torch.save({"state": sae.state_dict(), "layer": layer, "numbers": numbers}, folder / SAE_FILE)


def load_sae(folder: Path) -> tuple[TopKSAE, int, dict[str, Any]] | None:
    path = folder / SAE_FILE
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=False)
    numbers = saved["numbers"]
    sae = TopKSAE(numbers["width"], numbers["features"], numbers["k"])
    sae.load_state_dict(saved["state"])
    sae.requires_grad_(False)
    return sae, saved["layer"], numbers
