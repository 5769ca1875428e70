"""Tokenizer of the Hanoi microagent: every disk is one token, every structural piece is one token.

The text is exactly what ``maker_tasks.hanoi.compact_prompt`` and ``format_reply`` write, e.g.

    prompt: "cw prev = [1, 0, 1] state = [[3, 2], [], [1]]\\n"
    reply:  "move = [2, 0, 2]\\nnext_state = [[3], [2], [1]]"   (then <|endoftext|>)

How it is cut (built with the ``tokenizers`` library, wrapped in PreTrainedTokenizerFast):

* A normalizer replaces each fixed structural piece by one private-use character, and that
  character is a token: ``"cw prev = ["``, ``"] state = [["`` (peg 0 opens), ``"]]\\n"``,
  ``"move = ["``, ``"]\\nnext_state = [["`` (peg 0 opens), ``"]]"``, ... The separator between
  peg 0 and peg 1 and the one between peg 1 and peg 2 are the same text ``"], ["`` but different
  tokens (a regex look-ahead tells them apart), so each peg opens with its own marker.
* A number is one token, and a number after ``", "`` is one token with its separator
  (``", 7"``): a state of n disks is always n disk tokens + 4 markers, and every token of a state
  is unique (each disk appears once).
* Anything else falls back to single ASCII characters, so any text still encodes.
* The decoder maps the private-use characters back and concatenates (``Fuse``): decoding gives
  the exact text back. No BOS is added; the reply ends with EOS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
UNK = "<unk>"
MAX_NUMBER = 64  # disk numbers 1..64 (and peg numbers 0..2) are single tokens

# (token character, text it stands for, regex that finds it in the raw text). Applied in this
# order, so longer pieces go first ("ccw ..." before "cw ...", "]]\n" before "]]").
_PEG1_LOOKAHEAD = r"\], \[(?=[0-9, ]*\], \[)"  # the first "], [" of a state: another one follows
_PIECES: list[tuple[str, str, str | None]] = [
    ("\ue000", "ccw prev = none state = [[", None),
    ("\ue001", "cw prev = none state = [[", None),
    ("\ue002", "ccw prev = [", None),
    ("\ue003", "cw prev = [", None),
    ("\ue004", "] state = [[", None),
    ("\ue005", "]\nnext_state = [[", None),
    ("\ue006", "move = [", None),
    ("\ue007", "]]\n", None),
    ("\ue008", "]]", None),
    ("\ue009", "], [", _PEG1_LOOKAHEAD),  # peg 1 opens
    ("\ue00a", "], [", None),  # peg 2 opens
]
PIECES: dict[str, str] = {char: text for char, text, _ in _PIECES}


def _vocab() -> dict[str, int]:
    tokens = [EOS, UNK]
    tokens += [char for char, _, _ in _PIECES]
    tokens += [str(i) for i in range(MAX_NUMBER + 1)]
    tokens += [f", {i}" for i in range(MAX_NUMBER + 1)]
    for code in [10, *range(32, 127)]:  # fallback: "\n" and printable ASCII
        if chr(code) not in tokens:
            tokens.append(chr(code))
    return {tok: i for i, tok in enumerate(tokens)}


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(vocab=_vocab(), unk_token=UNK))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Replace(Regex(regex) if regex else text, char) for char, text, regex in _PIECES]
    )
    # ", 12" | "12" | any single character; the pieces are contiguous and cover the text.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r", [0-9]+|[0-9]+|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Sequence([*(decoders.Replace(char, text) for char, text, _ in _PIECES), decoders.Fuse()])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=EOS,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
        padding_side="right",
    )


def save_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Save with save_pretrained; the class is named PreTrainedTokenizerFast (not transformers 5's
    TokenizersBackend alias) so that older transformers, as in vLLM's environment, load it too."""
    tok = build_tokenizer()
    tok.save_pretrained(str(path))
    cfg_path = Path(path) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    return tok


def decode(tokenizer, ids) -> str:
    """Exact text of ``ids`` (special tokens dropped)."""
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _self_check(n: int = 2000) -> None:
    import random

    from maker_tasks.hanoi import HanoiState, apply_move, compact_prompt, format_reply, legal_moves

    tok = build_tokenizer()
    rng = random.Random(0)
    unk = tok.convert_tokens_to_ids(UNK)
    for _ in range(n):
        disks = rng.randint(1, MAX_NUMBER)
        pegs = [[], [], []]
        for d in range(disks, 0, -1):
            pegs[rng.randrange(3)].append(d)
        pegs_t = tuple(tuple(p) for p in pegs)
        prev = rng.choice([None, rng.choice(legal_moves(pegs_t))])
        state = HanoiState(pegs_t, prev, rng.choice([1, 2]))
        move = rng.choice(legal_moves(pegs_t))
        for text in (compact_prompt(state), format_reply(move, apply_move(pegs_t, move))):
            ids = tok(text)["input_ids"]
            assert unk not in ids, text
            assert decode(tok, ids) == text, (text, decode(tok, ids))
    print(f"round trip ok on {2 * n} texts; vocab {len(tok)}")


if __name__ == "__main__":
    _self_check()
    if len(sys.argv) > 1:
        save_tokenizer(sys.argv[1])
        print("saved to", sys.argv[1])

__all__ = ["build_tokenizer", "save_tokenizer", "decode", "PIECES", "EOS"]
