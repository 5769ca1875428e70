"""A tiny random Llama with the shared base's tokenizer: a base to train adapters on in seconds."""

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent.parent
BASE_TOKENIZER = ROOT / "models" / "base" / "model"


@pytest.fixture(autouse=True)
def one_thread():
    """Training tests are many tiny steps: one thread is faster, and fair to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-base")
    tokenizer = AutoTokenizer.from_pretrained(BASE_TOKENIZER, local_files_only=True)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # A random model's tied embeddings are tiny (std 0.02), which caps its logits near uniform, and
    # LoRA cannot grow them: a short full training first makes it a base adapters can steer, as a
    # trained base is.
    from maker.training.examples import Example
    from maker.training.trainer import Trainer, TrainSettings, pool_source

    warmup = [Example(f"echo {w}\n", w) for w in ("red", "green", "blue", "cyan", "pink", "gold", "grey", "teal")]
    settings = TrainSettings(method="full", budget_min=5, max_steps=150, batch_size=16, lr=1e-2, warmup_steps=5,
                             eval_every_s=1e9, checkpoint_every_s=1e9)
    Trainer(folder, folder, pool_source(warmup), warmup, settings, log=lambda _: None).train(progress=False)
    (folder / "checkpoint.pt").unlink()
    return folder
