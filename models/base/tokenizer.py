"""The shared base's tokenizer: byte-level BPE that encodes any text exactly, cut for step data.

How text is cut (built with the ``tokenizers`` library, wrapped in PreTrainedTokenizerFast so that
transformers and vLLM load it from the model folder):

* A pre-tokenizer splits the text into pieces, and merges never cross a piece:
  - a whole number 0..31 standing alone is one piece, together with a ``", "`` before it (``20``
    and ``", 19"`` in ``[20, 19]``: Hanoi's disks, peg and carry values), so it can be one token:
    a list of small numbers costs one token per item;
  - every other digit is a piece of its own: long numbers are read and written digit by digit,
    which is what digit arithmetic and comparison need;
  - a word, with the space before it (``" state"``);
  - a run of punctuation with the spaces inside and around it (``" = [["``, ``"], ["``, ``", "``);
  - other whitespace.
* Inside a piece, BPE merges learnt from the training mixture make single tokens of the
  structural pieces that pay (``"], ["``, ``" = [["``, ``"digit"``), and hand-added merges make
  each number 0..31, and each ``", "`` + number, one token.
* Bytes are the fallback: every one of the 256 byte values is in the vocabulary (GPT-2's
  byte-to-character map), so any UTF-8 text encodes, and decoding gives the exact text back.
* ``<|endoftext|>`` ends every reply (EOS, also the padding token). No BOS is added.

    python models/base/tokenizer.py            # rebuild models/base/tokenizer.json from the mixture
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
MAX_NUMBER = 31  # whole numbers 0..31 standing alone are single tokens
VOCAB_SIZE = 512  # bytes (256) + EOS + learnt merges, then 22 + 32 number tokens on top
PIECES = Regex(
    r"(?:, )?(?<![0-9])(?:[12]?[0-9]|3[01])(?![0-9])"  # a number 0..31 standing alone, with a ", " before it
    r"|[0-9]"  # any other digit, alone
    r"| ?[A-Za-z_]+"  # a word and the space before it
    r"| ?(?:[^\sA-Za-z0-9_]+ ?)+"  # punctuation with its spaces
    r"|\s+"  # any other whitespace
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(PIECES, behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def build(corpus: Iterable[str], vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Learn the merges from ``corpus`` (texts of the training mixture) and add the number tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    spec = json.loads(tok.to_str())
    vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
    comma = ",\u0120"  # ", " in the byte-level alphabet (a space is U+0120)

    def add(left: str, right: str) -> None:
        if left + right not in vocab:
            vocab[left + right] = len(vocab)
            merges.append([left, right])

    add(",", "\u0120")
    for number in range(10, MAX_NUMBER + 1):  # two digits: one merge each (single digits are bytes)
        add(str(number)[0], str(number)[1])
    for number in range(MAX_NUMBER + 1):  # then ", " + the number
        add(comma, str(number))
    tok = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, clean_up_tokenization_spaces=False,
                                   model_max_length=256)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import mixture

    out = Path(__file__).resolve().parent / "model"
    tokenizer = build(mixture.corpus(20_000, seed=1))
    tokenizer.save_pretrained(out)
    print(f"vocabulary {len(tokenizer)} tokens -> {out}")


if __name__ == "__main__":
    main()
