"""A plain GPT-2 folder read without transformers gives the backend what transformers' loading gives it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from maker.backends import gpt2_checkpoint  # noqa: E402
from maker.backends.codec import _PROBES, Codec  # noqa: E402
from maker.backends.hf_decode import GPT2Decoder, make_decoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HANOI = ROOT / "models" / "hanoi" / "model"
CPU = torch.device("cpu")


def test_the_shipped_hanoi_model_reads_the_same_without_transformers():
    plain = gpt2_checkpoint.read(HANOI, CPU)
    assert plain is not None
    tokenizer = transformers.AutoTokenizer.from_pretrained(HANOI, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(HANOI, local_files_only=True).eval()
    light, wrapped = Codec(plain.tokenizer), Codec(tokenizer)
    texts = [*_PROBES, "cw prev = [3, 0, 1] state = [[20, 19], [], [18, 17, 16]]\n"]
    assert light.encode_batch(texts) == wrapped.encode_batch(texts)
    assert [light.decode(light.encode(t)) for t in texts] == [wrapped.decode(wrapped.encode(t)) for t in texts]
    assert plain.eos == {tokenizer.eos_token_id, model.generation_config.eos_token_id}
    prompts = light.encode_batch(texts)
    with torch.inference_mode():
        _, ours = GPT2Decoder(plain.config, plain.weights).prefill(prompts, [1] * len(prompts))
        _, theirs = make_decoder(model).prefill(prompts, [1] * len(prompts))
    assert torch.equal(ours, theirs)


def _copy(tmp_path: Path, change) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(HANOI, folder)
    change(folder)
    return folder


def _edit(path: Path, **values) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change", [
    lambda f: _edit(f / "config.json", model_type="llama"),
    lambda f: _edit(f / "config.json", activation_function="relu"),
    lambda f: _edit(f / "tokenizer_config.json", tokenizer_class="LlamaTokenizerFast"),
    lambda f: _edit(f / "tokenizer_config.json", add_bos_token=True),
    lambda f: (f / "tokenizer.json").unlink(),
    lambda f: (f / "adapter_config.json").write_text("{}"),
    lambda f: (f / "special_tokens_map.json").write_text("{}"),
    lambda f: _edit(f / "config.json", n_layer=9),
], ids=["architecture", "activation", "tokenizer-class", "wrapper-setting", "no-tokenizer-json", "adapter",
        "special-tokens-map", "missing-weights"])
def test_anything_but_a_plain_gpt2_folder_is_left_to_transformers(tmp_path, change):
    assert gpt2_checkpoint.read(_copy(tmp_path, change), CPU) is None


def test_the_backend_serves_a_plain_folder_without_transformers_and_replies_as_through_it():
    import asyncio

    from maker.backends.base import SampleRequest
    from maker.backends.hf import HFBackend

    prompt = "ccw prev = none state = [[4, 3, 2, 1], [], []]\n"
    requests = [SampleRequest(prompt, 1, 0.0, 60), SampleRequest(prompt, 4, 1.0, 60, seed=3)]

    async def replies(backend):
        async with backend:
            return [[s.text for s in await backend.sample(r)] for r in requests]

    light, loaded = HFBackend(HANOI), HFBackend(HANOI, fast=False)
    assert light.model is None and loaded.model is not None  # read without transformers, and with it
    assert asyncio.run(replies(light)) == asyncio.run(replies(loaded))
