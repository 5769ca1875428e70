"""The Hanoi microagent's tokenizer round-trips the exact text; the shipped model (if present) loads
offline and its greedy replies parse."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from maker_tasks.hanoi import (  # noqa: E402
    HanoiState,
    HanoiTask,
    apply_move,
    compact_prompt,
    format_reply,
    legal_moves,
    parse_reply,
)

HANOI_DIR = Path(__file__).resolve().parents[2] / "models" / "hanoi"
MODEL_DIR = HANOI_DIR / "model"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"hanoi_{name}", HANOI_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(HANOI_DIR))  # the scripts import their siblings by name
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HANOI_DIR))
    return module


@pytest.fixture(scope="module")
def htok():
    return _load("tokenizer")


@pytest.fixture(scope="module")
def tok(htok):
    return htok.build_tokenizer()


def _random_texts(rng: random.Random, n: int):
    for _ in range(n):
        disks = rng.randint(1, 64)
        pegs = [[], [], []]
        for d in range(disks, 0, -1):
            pegs[rng.randrange(3)].append(d)
        pegs_t = tuple(tuple(p) for p in pegs)
        prev = rng.choice([None, rng.choice(legal_moves(pegs_t))])
        state = HanoiState(pegs_t, prev, rng.choice([1, 2]))
        move = rng.choice(legal_moves(pegs_t))
        yield compact_prompt(state), format_reply(move, apply_move(pegs_t, move))


def test_round_trip_exact(htok, tok):
    unk = tok.convert_tokens_to_ids(htok.UNK)
    for prompt, reply in _random_texts(random.Random(7), 500):
        for text in (prompt, reply, prompt + reply):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert unk not in ids
            assert htok.decode(tok, ids) == text
        ids = tok(reply)["input_ids"] + [tok.eos_token_id]  # EOS is dropped on decoding
        assert htok.decode(tok, ids) == reply


def test_each_disk_is_one_token_and_pegs_have_own_markers(tok):
    prompt = compact_prompt(HanoiState(((20, 19, 18), (), (17,)), (1, 0, 1), 1))
    toks = tok.convert_ids_to_tokens(tok(prompt, add_special_tokens=False)["input_ids"])
    # "cw prev = [", "1", ", 0", ", 1", "] state = [[", "20", ", 19", ", 18", peg1, peg2, "17", "]]\n"
    assert len(toks) == 12
    assert toks[5:8] == ["20", ", 19", ", 18"]
    assert toks[8] != toks[9]  # the two "], [" separators are different tokens
    state_tokens = toks[4:]
    assert len(set(state_tokens)) == len(state_tokens)


def test_save_and_reload_offline(htok, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    htok.save_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    for prompt, reply in _random_texts(random.Random(3), 100):
        ids = tok(prompt + reply, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False) == prompt + reply
    assert tok.eos_token == htok.EOS


def test_training_states_are_reachable_and_the_strategy_follows_them():
    prepare = _load("prepare")
    rng = random.Random(5)
    for _ in range(300):
        disks = rng.randint(1, 12)
        src, dst = rng.sample(range(3), 2)
        t = rng.randrange(2**disks - 1)
        prev = prepare.tth_move(disks, t, src, dst) if t else None
        state = prepare.build_state(disks, disks, t, src, dst, [], prev)
        nxt = prepare.build_state(disks, disks, t + 1, src, dst, [], None)
        task = HanoiTask(disks=disks, source=src, target=dst)
        assert task.oracle(state)[1] == nxt.pegs
    cfg = prepare.DataConfig()
    for _ in range(300):
        state = prepare.sample_state(rng, rng.randint(1, 24), cfg)
        prompt, reply = prepare.answer(state)
        assert prompt == compact_prompt(state)
        parse_reply(reply, sum(len(p) for p in state.pegs))


def test_big_move_states_are_exactly_the_runs_big_disk_steps():
    prepare = _load("prepare")
    for disks, min_disk in ((10, 6), (7, 1), (12, 12)):
        task = HanoiTask(disks=disks)
        state, walked = task.initial_state(), []
        for _ in range(2**disks - 1):
            move = task.oracle(state)
            if move[0][0] >= min_disk:
                walked.append(state)
            state = task.apply(state, move)
        assert prepare.big_move_states(disks, min_disk) == walked
    rng_states = prepare.big_move_eval_states(200, seed=3, min_disks=12, max_disks=16)
    for state in rng_states:
        disks = sum(len(p) for p in state.pegs)
        assert HanoiTask(disks=disks).oracle(state)[0][0] > disks // 2  # a top-half disk moves next
    cfg = prepare.DataConfig(boundary_share=1.0, boundary_top_share=1.0)
    for seed in range(200):
        state = prepare.sample_state(random.Random(seed), 16, cfg)
        parse_reply(prepare.answer(state)[1], 16)


@pytest.mark.skipif(not (MODEL_DIR / "config.json").exists(), reason="models/hanoi/model not trained yet")
def test_shipped_model_loads_offline_and_replies_parse(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR)).eval()
    assert model.config.max_position_embeddings >= 128
    assert model.generation_config.eos_token_id == tok.eos_token_id
    task = HanoiTask(disks=10)
    state = task.initial_state()
    for _ in range(3):
        ids = torch.tensor([tok(compact_prompt(state), add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=40,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
        reply = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        candidate = parse_reply(reply, 10)  # a format red flag would raise
        assert candidate == task.oracle(state), (compact_prompt(state), reply)
        state = task.apply(state, candidate)
