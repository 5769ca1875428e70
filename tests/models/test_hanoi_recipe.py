"""The Hanoi recipe trains on the library's loop (maker.training) and writes a folder the engine serves;
its evaluation samples the shipped model through the engine's backend."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from maker.backends.base import Sample, SampleRequest  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.training.trainer import CHECKPOINT  # noqa: E402

HANOI_DIR = Path(__file__).resolve().parents[2] / "models" / "hanoi"
SHIPPED = HANOI_DIR / "model"


def _load(name: str):
    """models/hanoi/NAME.py as a module; its siblings (prepare, tokenizer) are imported by name, so
    any other folder's modules of those names are kept out of the way meanwhile."""
    siblings = {n: sys.modules.pop(n) for n in ("prepare", "tokenizer") if n in sys.modules}
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location(f"hanoi_{name}", HANOI_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
        for n in ("prepare", "tokenizer"):
            sys.modules.pop(n, None)
        sys.modules.update(siblings)
    return module


@pytest.fixture
def threads():
    before = torch.get_num_threads()  # the recipe sets torch's threads process-wide
    yield
    torch.set_num_threads(before)


def test_the_recipe_trains_on_the_library_trainer_and_resumes(tmp_path, threads):
    train = _load("train")
    out = tmp_path / "hanoi"
    args = ["--out", str(out), "--val-size", "16", "--no-progress", "--set", "batch_size=8", "warmup_steps=2"]
    first = train.main([*args, "--max-steps", "3"])
    assert first["steps"] == 3 and first["held_out"] == 16
    assert (out / CHECKPOINT).is_file()  # the library's checkpoint: the same command resumes it
    again = train.main([*args, "--max-steps", "5"])
    assert again["steps"] == 5 and again["history"][: len(first["history"])] == first["history"]

    # The shipped model's architecture and tokenizer, and the files a run needs.
    config, shipped = (json.loads((d / "config.json").read_text()) for d in (out, SHIPPED))
    for key in ("model_type", "n_layer", "n_embd", "n_head", "n_inner", "n_positions", "vocab_size", "eos_token_id"):
        assert config[key] == shipped[key], key
    assert (out / "tokenizer.json").read_text() == (SHIPPED / "tokenizer.json").read_text()
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert json.loads((out / "maker.json").read_text()) == json.loads((SHIPPED / "maker.json").read_text())
    record = json.loads((out / "training.json").read_text())
    assert record["settings"]["method"] == "scratch" and record["settings"]["batch_size"] == 8
    assert record["steps"] == 5 and record["data"]["boundary_share"] == 0.25


async def test_the_folder_it_writes_is_served_by_the_engine_backend(tmp_path, threads):
    train = _load("train")
    out = tmp_path / "hanoi"
    train.main(["--out", str(out), "--max-steps", "1", "--val-size", "4", "--no-progress", "--set", "batch_size=4"])
    async with HFBackend(out) as backend:
        assert backend.decoder.kind == "gpt2"  # read as a plain GPT-2 folder, as the shipped one is
        [sample] = await backend.sample(SampleRequest("cw prev = none state = [[2, 1], [], []]\n", max_tokens=8))
    assert sample.tokens >= 1


async def test_evaluation_samples_the_shipped_model_through_the_backend():
    evaluate, prepare = _load("evaluate"), _load("prepare")
    states = prepare.eval_states(24, seed=5, min_disks=10, max_disks=12)
    async with HFBackend(SHIPPED) as backend:
        greedy = await evaluate.replies(backend, states, temperature=0.0, seed=0)
        hot = await evaluate.replies(backend, states, temperature=1.0, seed=0)
        again = await evaluate.replies(backend, states, temperature=1.0, seed=0)
    assert [s.text for s in hot] == [s.text for s in again]  # seeded per step
    result = evaluate.score(states, greedy, "greedy")
    assert result["steps"] == 24 and result["wrong"] == 0, result["wrong_replies"]
    cut = Sample(greedy[0].text[:10], 4, "length")  # cut at the generation cap: red-flagged, as a run would
    assert evaluate.judge(states[0], cut, sum(map(len, states[0].pegs)))[:2] == (False, "format")
