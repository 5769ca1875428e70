"""The shared base's tokenizer encodes any text exactly and cuts step data as its card says."""

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(ROOT / "models" / "base" / "model", local_files_only=True)


def _pieces(tok, text):
    return [tok.decode([i]) for i in tok(text)["input_ids"]]


def test_any_text_round_trips_exactly(tok):
    rng = random.Random(0)
    alphabet = "ab xyz019 ,.;[]{}=_-\n\t\r\u00e9\u4e2d\U0001f30d\u200b\ufeff"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(500)]
    texts += ["  leading and trailing  ", "\n\n", "\x00\x01 control", "caf\u00e9 \u00fcber na\u00efve"]
    for text in texts:
        assert tok.decode(tok(text)["input_ids"]) == text, repr(text)


def test_every_built_in_prompt_and_reply_round_trips(tok):
    sys.path.insert(0, str(ROOT / "models" / "base"))
    import mixture

    for example in mixture.draw(random.Random(3), 600):
        for text in (example.prompt, example.reply):
            assert tok.decode(tok(text)["input_ids"]) == text


def test_small_numbers_are_one_token_and_long_numbers_go_digit_by_digit(tok):
    assert _pieces(tok, "state = [[20, 19, 3], [], [1]]\n") == ["state", " = [[", "20", ", 19", ", 3", "], [], [", "1",
                                                                "]]", "\n"]
    assert _pieces(tok, "31 32 12345") == ["31", " ", "3", "2", " ", "1", "2", "3", "4", "5"]
    assert _pieces(tok, "digit = 5, carry = 1") == ["digit", " = ", "5", ", ", "carry", " = ", "1"]
    assert tok.eos_token == "<|endoftext|>" and tok.bos_token is None
