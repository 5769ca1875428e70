"""The training loop behind ``maker train`` and the shared base's recipe: LoRA, full or from scratch.

One loop for every method:

- ``lora``: peft LoRA on every attention and MLP projection of a base folder; only the adapter is
  saved (peft's ``adapter_config.json`` and ``adapter_model.safetensors``).
- ``full``: every weight of the base is trained; a whole model folder is saved.
- ``scratch``: a new model (Llama-style ``Architecture``, or a recipe's ``make_model``) with the base's tokenizer.
- ``sae-lora``: LoRA as above, trained with a frozen sparse autoencoder in the path
  (``maker.training.sae``): it is fit first, within the budget, to one layer of a *source*
  microagent that has the skill, then replaces that layer's output in the base while the adapter
  trains, against the base's own adapter-free distribution (``kl``, Resa's objective) or the labels
  (``sft``). Only the adapter is served; held-out scoring runs without the SAE, as serving does.

The loss is on the reply tokens only (reply + EOS). A reply counts as right when the argmax at each
of its positions is the right token (teacher forcing: exactly what greedy decoding would write),
so each batch also says which examples the model still gets wrong. Those go to a replay buffer and
come back in later batches (hard-example replay). The learning rate follows the wall-clock budget
(linear warm-up, then cosine), so the schedule ends when the time does. Every ``eval_every_s`` the
model is scored on a held-out set (greedy errors and loss); it is saved each time its held-out loss
drops. The scoring counts against the budget, so it is spaced out to cost at most about a sixth of it:
on a large base, scoring every minute slowed training (SmolLM2-135M on the ledger example, 2 cores:
23 steps in its first 3.6 minutes scored each minute, 50 in 5.5 minutes spaced; training.json histories).
A checkpoint
(every ``checkpoint_every_s``, and on Ctrl-C) holds the weights being trained, the optimiser, the
elapsed time, the replay buffer and the random states: running again with the same ``out`` resumes.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from maker.errors import ConfigError
from maker.training.examples import Example

__all__ = ["Architecture", "TrainSettings", "Trainer", "load_tokenizer"]

Source = Callable[[random.Random, int], list[Example]]  # (rng, n) -> n fresh training examples
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CHECKPOINT = "checkpoint.pt"
EVAL_SPACING = 5  # at least this many times the last scoring's duration between two scorings: <= 1/6 of the clock


class Architecture(BaseModel):
    """A Llama-style model (what transformers and vLLM both serve with LoRA)."""

    model_config = ConfigDict(extra="forbid")
    layers: int = Field(4, ge=1)
    width: int = Field(128, ge=8)
    heads: int = Field(4, ge=1)
    mlp: int = Field(384, ge=8, description="SwiGLU hidden size")
    positions: int = Field(256, ge=16, description="longest prompt + reply, in tokens")


class TrainSettings(BaseModel):
    """How to train; every field has a default that suits our small models on a CPU."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["lora", "full", "scratch", "sae-lora"] = "lora"
    budget_min: float = Field(10.0, gt=0, description="wall-clock minutes of training (resumes count what was spent)")
    max_steps: int | None = Field(None, ge=1, description="also stop after this many optimiser steps (the schedule "
                                                          "then follows whichever ends first)")
    batch_size: int = Field(64, ge=1)
    lr: float | None = Field(None, gt=0, description="peak learning rate (default: 2e-3 for lora and scratch, 5e-4 for full)")
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    lora_rank: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    replay_share: float = Field(0.25, ge=0, lt=1, description="share of each batch replayed from examples once wrong")
    replay_capacity: int = Field(4096, ge=0)
    eval_every_s: float = Field(60.0, gt=0)
    checkpoint_every_s: float = Field(120.0, gt=0)
    seed: int = 0
    architecture: Architecture = Field(default_factory=Architecture)
    sae_source: str | None = Field(None, description="sae-lora: the model or adapter folder (on the same base) whose "
                                                     "activations the SAE learns: a microagent that has the skill")
    sae_layer: int = Field(1, ge=0, description="sae-lora: the block whose output the SAE rebuilds")
    sae_features: int = Field(1024, ge=1)
    sae_k: int = Field(32, ge=1, description="active features per token (Resa: 32)")
    sae_objective: Literal["kl", "sft"] = Field("kl", description="kl: match the base's own adapter-free "
                                                                  "distribution (Resa); sft: the labels")
    sae_share: float = Field(0.2, gt=0, lt=1, description="share of the budget spent fitting the SAE")
    sae_examples: int = Field(2000, ge=1, description="examples whose tokens the SAE is fit to")

    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (5e-4 if self.method == "full" else 2e-3)

    @model_validator(mode="after")
    def _sae_settings(self) -> TrainSettings:
        if self.sae_k > self.sae_features:
            raise ValueError(f"sae_k ({self.sae_k}) must not exceed sae_features ({self.sae_features})")
        if self.sae_source is not None and self.method != "sae-lora":
            raise ValueError(f"sae_source is for method sae-lora, not {self.method}")
        return self

    @property
    def adapter(self) -> bool:
        """Whether the method trains (and saves) a LoRA adapter rather than a whole model."""
        return self.method in ("lora", "sae-lora")


def load_tokenizer(folder: str | Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a tokenizer from {str(folder)!r}: {exc}") from None


class Trainer:
    """Trains one model on examples from ``source`` and saves it to ``out``.

    ``base`` is the folder whose tokenizer (and, for lora and full, weights) the model starts from.
    ``validation`` is the held-out set. ``on_save(metrics)`` runs after each save (a model card).
    ``make_model(tokenizer)``, when given, builds the new model instead of ``Architecture`` (scratch:
    a recipe's own architecture, such as the Hanoi microagent's GPT-2).
    """

    def __init__(self, base: str | Path, out: str | Path, source: Source, validation: Sequence[Example],
                 settings: TrainSettings, *, on_save: Callable[[dict[str, Any]], None] | None = None,
                 log: Callable[[str], None] = print, make_model: Callable[[Any], Any] | None = None) -> None:
        if not validation:
            raise ConfigError("the validation set is empty")
        self.base, self.out, self.source, self.settings = Path(base), Path(out), source, settings
        self.validation, self.on_save, self.log = list(validation), on_save, log
        self.tokenizer = load_tokenizer(self.base)
        if self.tokenizer.eos_token_id is None:
            raise ConfigError(f"the tokenizer in {str(self.base)!r} has no EOS token: replies could never end")
        # Seeded before the model is made: its fresh weights (scratch) and LoRA matrices come from
        # torch's global generator, which whatever ran before in the process has moved on.
        torch.manual_seed(settings.seed)
        self.model = self._make_model() if make_model is None else make_model(self.tokenizer)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=settings.peak_lr(),
                                           weight_decay=0.0 if settings.adapter else settings.weight_decay)
        self.sae: Any = None  # sae-lora: the SAEInsert hook, once the SAE is fit (train)
        self.sae_numbers: dict[str, Any] | None = None  # ... and what its fitting measured
        self.rng = random.Random(settings.seed)
        self.replay: list[Example] = []
        self.step, self.elapsed, self.examples_seen = 0, 0.0, 0
        self.best_errors: int | None = None  # of the saved model
        self.best_loss: float | None = None
        self.history: list[dict[str, Any]] = []
        self.eval_seconds = 0.0  # what the last held-out scoring took

    # --- the model --------------------------------------------------------------------------
    def _make_model(self) -> Any:
        from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

        s = self.settings
        if s.method == "scratch":
            a, tok = s.architecture, self.tokenizer
            config = LlamaConfig(vocab_size=len(tok), hidden_size=a.width, intermediate_size=a.mlp,
                                 num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                                 max_position_embeddings=a.positions, tie_word_embeddings=True,
                                 bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            return LlamaForCausalLM(config).float()
        try:
            model = AutoModelForCausalLM.from_pretrained(self.base, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the base model from {str(self.base)!r}: {exc}") from None
        if s.method == "full":
            return model
        if s.method == "sae-lora" and s.sae_source is None:
            raise ConfigError("--method sae-lora needs --sae-source DIR: a model or adapter folder that has the skill")
        from peft import LoraConfig, get_peft_model

        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [t for t in LORA_TARGETS if t in present]
        if not targets:
            raise ConfigError(f"the base in {str(self.base)!r} has none of the projections LoRA adapts ({', '.join(LORA_TARGETS)})")
        config = LoraConfig(r=s.lora_rank, lora_alpha=s.lora_alpha, target_modules=targets, lora_dropout=0.0,
                            task_type="CAUSAL_LM")
        from maker.backends.hf import peft_quietly

        with peft_quietly():
            return get_peft_model(model, config)

    # --- data ---------------------------------------------------------------------------------
    def encode(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input ids, attention mask, labels): prompt + reply + EOS, right-padded; labels only on the reply."""
        tok = self.tokenizer
        prompts = tok([e.prompt for e in examples], add_special_tokens=True)["input_ids"]
        replies = tok([e.reply for e in examples], add_special_tokens=False)["input_ids"]
        rows = [(p, [*r, tok.eos_token_id]) for p, r in zip(prompts, replies, strict=True)]
        longest = max(len(p) + len(r) for p, r in rows)
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 256)
        if longest > limit:
            raise ConfigError(f"an example has {longest} tokens; the model takes at most {limit} positions")
        ids = torch.full((len(rows), longest), tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        labels = torch.full((len(rows), longest), -100)
        for i, (p, r) in enumerate(rows):
            n = len(p) + len(r)
            ids[i, :n] = torch.tensor(p + r)
            mask[i, :n] = 1
            labels[i, len(p):n] = torch.tensor(r)
        return ids, mask, labels

    def _forward(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(mean loss over reply tokens, per-example right-or-wrong under greedy decoding, reply tokens)."""
        ids, mask, labels = self.encode(examples)
        logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        targets = labels[:, 1:]
        if self.sae is not None and self.sae.active and self.settings.sae_objective == "kl":
            loss = self._kl_to_base(ids, mask, logits, targets != -100)
        else:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        hits = (logits.argmax(-1) == targets) | (targets == -100)
        return loss, hits.all(dim=1), int((targets != -100).sum())

    def _kl_to_base(self, ids: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor, replies: torch.Tensor) -> torch.Tensor:
        """KL(base || base with SAE and adapter) on the reply positions: the base's own distribution is the
        adapter-free target without the SAE."""
        with torch.no_grad(), self.model.disable_adapter():
            self.sae.active = False
            try:
                reference = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            finally:
                self.sae.active = True
        return F.kl_div(F.log_softmax(logits[replies], -1), F.log_softmax(reference[replies], -1), log_target=True,
                        reduction="batchmean")

    @torch.no_grad()
    def score(self, examples: Sequence[Example], batch: int = 256) -> tuple[int, float]:
        """(how many of ``examples`` greedy decoding gets wrong, mean loss per reply token), teacher
        forced: one pass per batch gives what greedy decoding would write."""
        was_training = self.model.training
        self.model.eval()
        if self.sae is not None:  # scored as it will be served: without the SAE
            self.sae.active = False
        wrong, loss_sum, tokens = 0, 0.0, 0
        try:
            for start in range(0, len(examples), batch):
                loss, right, counted = self._forward(examples[start:start + batch])
                wrong += int((~right).sum())
                loss_sum, tokens = loss_sum + loss.item() * counted, tokens + counted
        finally:
            self.model.train(was_training)
            if self.sae is not None:
                self.sae.active = True
        return wrong, loss_sum / max(1, tokens)

    def errors(self, examples: Sequence[Example], batch: int = 256) -> int:
        """How many of ``examples`` greedy decoding gets wrong."""
        return self.score(examples, batch)[0]

    # --- the loop -----------------------------------------------------------------------------
    def lr_at(self) -> float:
        s = self.settings
        peak = s.peak_lr()
        if self.step < s.warmup_steps:
            return peak * (self.step + 1) / s.warmup_steps
        progress = min(1.0, max(self.elapsed / (s.budget_min * 60), self.step / (s.max_steps or math.inf)))
        return peak * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    def _batch(self) -> list[Example]:
        s = self.settings
        replayed = min(len(self.replay), int(s.batch_size * s.replay_share))
        batch = [self.replay.pop(self.rng.randrange(len(self.replay))) for _ in range(replayed)]
        return batch + self.source(self.rng, s.batch_size - replayed)

    def train(self, progress: bool = True) -> dict[str, Any]:
        """Train until the budget is spent (resuming a checkpoint in ``out`` if there is one)."""
        from tqdm import tqdm

        s = self.settings
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        if s.method == "sae-lora" and self.sae is None:  # once: a second train() keeps the SAE in place
            self._insert_sae()
        budget = s.budget_min * 60
        self.model.train()
        last_eval = last_checkpoint = self.elapsed
        try:
            with tqdm(total=round(budget), initial=round(min(self.elapsed, budget)), unit="s", disable=not progress,
                      desc=f"maker train ({s.method})", bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}") as bar:
                while self.elapsed < budget and (s.max_steps is None or self.step < s.max_steps):
                    began = time.perf_counter()
                    for group in self.optimizer.param_groups:
                        group["lr"] = self.lr_at()
                    batch = self._batch()
                    loss, right, _ = self._forward(batch)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
                    self.optimizer.step()
                    self.replay.extend(e for e, ok in zip(batch, right.tolist(), strict=True) if not ok)
                    del self.replay[:max(0, len(self.replay) - s.replay_capacity)]
                    self.step += 1
                    self.examples_seen += len(batch)
                    self.elapsed += time.perf_counter() - began
                    bar.update(min(self.elapsed, budget) - bar.n)
                    if self.step % 20 == 0:
                        held = "" if self.best_errors is None else f" held-out errors {self.best_errors}"
                        bar.set_postfix_str(f"loss {loss.item():.4f} replay {len(self.replay)}{held}")
                    if self.elapsed - last_eval >= max(s.eval_every_s, EVAL_SPACING * self.eval_seconds):
                        self._evaluate()
                        last_eval = self.elapsed
                    if self.elapsed - last_checkpoint >= s.checkpoint_every_s:
                        self._checkpoint()
                        last_checkpoint = self.elapsed
            self._evaluate()
        except KeyboardInterrupt:
            self._checkpoint()
            self.log(f"maker train: interrupted at {self.elapsed / 60:.1f} of {s.budget_min:g} min; run the same "
                     "command again to resume")
            raise
        self._checkpoint()
        return self.summary()

    def _insert_sae(self) -> None:
        """Fit the SAE to the source's activations (or load the one this folder already fit), and put it in the base's path."""
        from maker.training.sae import SAEInsert, block_count, collect_activations, load_sae, save_sae, train_sae

        s = self.settings
        if not 0 <= s.sae_layer < block_count(self.model):
            raise ConfigError(f"--sae-layer must be in 0..{block_count(self.model) - 1} for this base, got {s.sae_layer}")
        fit_for = {"source": s.sae_source, "layer": s.sae_layer, "features": s.sae_features, "k": s.sae_k}
        loaded = load_sae(self.out)
        if loaded is not None:
            sae, _, numbers = loaded
            if {key: numbers.get(key) for key in fit_for} != fit_for:
                raise ConfigError(f"{str(self.out)!r} holds an SAE fit with other settings ({numbers}): give another --out")
        else:
            began = time.perf_counter()
            source = _load_source(Path(s.sae_source))  # type: ignore[arg-type]
            if source.get_input_embeddings().num_embeddings != self.model.get_input_embeddings().num_embeddings:
                raise ConfigError(f"the SAE source {s.sae_source!r} has another vocabulary than the base: it must be a "
                                  "model or adapter on the same base")
            examples = self.source(random.Random(s.seed + 7), s.sae_examples)
            batches = [self.encode(examples[i:i + 64])[:2] for i in range(0, len(examples), 64)]
            activations = collect_activations(source.eval(), batches, s.sae_layer)
            if activations.shape[1] != self.model.config.hidden_size:
                raise ConfigError(f"the SAE source's width {activations.shape[1]} differs from the base's "
                                  f"{self.model.config.hidden_size}")
            spent = time.perf_counter() - began
            sae, numbers = train_sae(activations, s.sae_features, s.sae_k, max(1.0, s.sae_share * s.budget_min * 60 - spent),
                                     seed=s.seed)
            numbers.update(fit_for)
            save_sae(sae, s.sae_layer, numbers, self.out)
            self.elapsed += time.perf_counter() - began  # the SAE's time is part of the budget
            self.log(f"maker train: SAE on layer {s.sae_layer} of {s.sae_source}: {numbers['tokens']:,} tokens, "
                     f"{numbers['fraction_unexplained']:.4f} of the variance unexplained, {numbers['dead_features']} dead features")
            self._checkpoint()  # the fit's minutes are spent: a resume must not lose them
        self.sae_numbers = numbers
        self.sae = SAEInsert(self.model, s.sae_layer, sae)

    def summary(self) -> dict[str, Any]:
        sae = {"sae": self.sae_numbers} if self.sae_numbers else {}
        return {**sae, "steps": self.step, "examples_seen": self.examples_seen, "minutes": round(self.elapsed / 60, 2),
                "held_out": len(self.validation), "held_out_errors": self.best_errors,
                "held_out_loss": None if self.best_loss is None else round(self.best_loss, 6), "history": self.history}

    def _evaluate(self) -> None:
        began = time.perf_counter()
        wrong, loss = self.score(self.validation)
        self.eval_seconds = time.perf_counter() - began
        self.elapsed += self.eval_seconds
        self.history.append({"minutes": round(self.elapsed / 60, 2), "step": self.step, "held_out_errors": wrong,
                             "held_out_loss": round(loss, 6)})
        # The held-out loss picks the model to keep, not the greedy errors: a run samples at a
        # temperature, and a model can be right at the argmax while its distribution is still flat
        # (at T = 1.0 most of its samples then come out malformed). The errors are reported.
        if self.best_loss is None or loss < self.best_loss:
            self.best_errors, self.best_loss = wrong, loss
            self.save()

    def save(self) -> None:
        """The model as it should be served: the adapter alone (lora), or a whole model folder."""
        self.model.save_pretrained(self.out)
        if not self.settings.adapter:
            self.tokenizer.save_pretrained(self.out)
            config = self.model.generation_config
            config.eos_token_id, config.pad_token_id = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
            config.save_pretrained(self.out)
        if self.on_save is not None:
            self.on_save(self.summary())

    # --- resume -------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        path = self.out / CHECKPOINT
        tmp = path.with_suffix(".tmp")
        weights = {name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad}
        torch.save({"weights": weights, "optimizer": self.optimizer.state_dict(), "step": self.step,
                    "elapsed": self.elapsed, "examples_seen": self.examples_seen, "best_errors": self.best_errors,
                    "best_loss": self.best_loss, "history": self.history,
                    "replay": [(e.prompt, e.reply) for e in self.replay], "rng": self.rng.getstate(),
                    "torch_rng": torch.get_rng_state(), "settings": self.settings.model_dump(mode="json")}, tmp)
        tmp.replace(path)  # a crash mid-write leaves the previous checkpoint whole

    def _resume(self) -> None:
        path = self.out / CHECKPOINT
        if not path.is_file():
            return
        saved = torch.load(path, weights_only=False)
        mine = self.settings.model_dump(mode="json")
        changed = [k for k in ("method", "lora_rank", "lora_alpha", "architecture", "sae_source", "sae_layer",
                               "sae_features", "sae_k", "sae_objective") if saved["settings"].get(k) != mine[k]]
        if changed:
            raise ConfigError(f"{str(path)!r} was trained with other {', '.join(changed)}: give another --out, or delete "
                              "the checkpoint to start over")
        # Only the trained weights are saved (missing keys are expected); a weight this model lacks is a foreign checkpoint.
        if foreign := self.model.load_state_dict(saved["weights"], strict=False).unexpected_keys:
            raise ConfigError(f"{str(path)!r} holds weights this model does not have ({foreign[0]}, ...): give another --out")
        self.optimizer.load_state_dict(saved["optimizer"])
        self.step, self.elapsed, self.examples_seen = saved["step"], saved["elapsed"], saved["examples_seen"]
        self.best_errors, self.best_loss, self.history = saved["best_errors"], saved["best_loss"], saved["history"]
        self.replay = [Example(p, r) for p, r in saved["replay"]]
        self.rng.setstate(saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
        self.log(f"maker train: resuming {str(path)!r} at step {self.step}, {self.elapsed / 60:.1f} min spent")


def _load_source(folder: Path) -> Any:
    """A whole model folder, or an adapter folder merged into its base (the SAE's source)."""
    from transformers import AutoModelForCausalLM

    from maker.config import adapter_base

    base = adapter_base(folder)
    try:
        model = AutoModelForCausalLM.from_pretrained(base or folder, local_files_only=True, dtype=torch.float32)
        if base is None:
            return model
        from peft import PeftModel

        from maker.backends.hf import peft_quietly

        with peft_quietly():
            return PeftModel.from_pretrained(model, folder).merge_and_unload()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the SAE source {str(folder)!r}: {exc}") from None


def pool_source(pool: Sequence[Example]) -> Source:
    """A source that draws uniformly from a fixed pool of examples."""
    if not pool:
        raise ConfigError("there are no training examples")

    def draw(rng: random.Random, n: int) -> list[Example]:
        return [pool[rng.randrange(len(pool))] for _ in range(n)]

    return draw


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
