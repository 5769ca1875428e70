"""A tiny random Llama and LoRA adapters on it, built in a folder, and its greedy replies computed in
process with transformers + peft: the reference a LoRA-serving server's replies are checked against.

The weights are random (seeded), so nothing here needs a trained model; only the tokenizer files are
borrowed from a real model folder, so that prompts tokenize the way the served models' do. Adapters
are made with ``init_lora_weights=False``: peft starts LoRA B at zero otherwise, and an untrained
adapter would then answer exactly like the base, hiding a request routed to the wrong model.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# Every linear layer of a Llama block, as a trained microagent's adapter would target.
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft 0.21 reads ``is_gradient_checkpointing``, which transformers 5 deprecates with a
    FutureWarning (an error under the suite's filterwarnings): not ours to fix, so ignored here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def has_tokenizer(source: Path) -> bool:
    """Whether ``source`` holds the tokenizer files ``build_base`` copies."""
    return all((source / name).is_file() for name in TOKENIZER_FILES)


def build_base(folder: Path, tokenizer_source: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama (hidden 64, 2 heads, tied embeddings) with ``tokenizer_source``'s tokenizer,
    saved as a full HF model folder; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_source / name, folder / name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eos = tokenizer.eos_token_id
    # 2 heads of 32: vLLM's CPU attention serves head sizes 32, 64, 80, ... only (4 heads of 16 crash it).
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def build_adapter(folder: Path, base: Path, seed: int, rank: int = 8, b_std: float | None = None) -> Path:
    """A peft LoRA adapter of rank ``rank`` on every linear layer of ``base``, with random (nonzero)
    A and B, saved to ``folder``; returns the folder. ``b_std`` draws B from N(0, b_std) instead of
    torch's default init: a real model then keeps most of its replies and changes some, as a trained
    adapter does, rather than turning to noise whose near-tied logits any rounding can flip."""
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGET_MODULES, init_lora_weights=False)
    with _quiet_peft():
        model = get_peft_model(LlamaForCausalLM.from_pretrained(base), config)
        if b_std is not None:
            with torch.no_grad():
                for name, weight in model.named_parameters():
                    if "lora_B" in name:
                        weight.normal_(0.0, b_std)
        model.save_pretrained(folder)
    return folder


def load(base: Path, adapter: Path | None = None) -> torch.nn.Module:
    """The base model, with ``adapter`` applied through peft when given, ready for inference."""
    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        with _quiet_peft():
            model = PeftModel.from_pretrained(model, adapter)
    return model.eval()


@torch.no_grad()
def greedy_tokens(model: torch.nn.Module, prompt_ids: Sequence[int], new_tokens: int) -> list[int]:
    """``new_tokens`` argmax tokens after ``prompt_ids``, never stopping at end-of-text (as a server
    asked to ``ignore_eos`` does). Recomputes the whole sequence each step: slow but plain."""
    ids = list(prompt_ids)
    for _ in range(new_tokens):
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        ids.append(int(logits.argmax()))
    return ids[len(prompt_ids):]


def reference_replies(base: Path, adapters: dict[str, Path | None], prompts: Sequence[str],
                      new_tokens: int) -> dict[str, dict[str, list[int]]]:
    """``{model name: {prompt: greedy token ids}}`` from transformers + peft, one entry per name in
    ``adapters`` (None names the base itself)."""
    tokenizer = tokenizer_of(base)
    replies = {}
    for name, adapter in adapters.items():
        model = load(base, adapter)
        replies[name] = {p: greedy_tokens(model, tokenizer(p)["input_ids"], new_tokens) for p in prompts}
    return replies


def tokenizer_of(base: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``base``."""
    return AutoTokenizer.from_pretrained(base)
