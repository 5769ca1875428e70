"""Text to token ids and back for the in-process backend, as fast as the tokenizer allows.

A Hugging Face fast tokenizer wraps a Rust ``tokenizers.Tokenizer``; the wrapper's Python layer
costs more than the Rust call for the short texts of step tasks (measured on a 16-disk run: about
a fifth of the decoding thread went to tokenizing and detokenizing). ``Codec`` calls the Rust
tokenizer directly when, on a few probe texts, it gives the same ids and texts as the wrapper; for
any other tokenizer it calls the wrapper. Given a Rust tokenizer itself (a plain GPT-2 folder read
without transformers), it calls that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_PROBES = ("ccw prev = none state = [[5, 4, 3, 2, 1], [], []]\n", "move = [1, 0, 2]\nnext_state = [[5], [4], []]",
           "Which is larger, 270 or 271? Reply with exactly: larger = <the number>\n", " héllo  wörld\t42 ")


class Codec:
    """``encode_batch`` (with the tokenizer's special tokens), ``encode`` (without), ``decode``, ``decode_batch``
    (special tokens skipped, no clean-up of spaces: the text exactly as the model wrote it)."""

    def __init__(self, tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        if isinstance(tokenizer, Tokenizer):  # a plain checkpoint's own (maker.backends.gpt2_checkpoint): no wrapper
            self.tokenizer, self.rust = None, tokenizer
            return
        self.tokenizer = tokenizer
        rust = getattr(tokenizer, "backend_tokenizer", None)
        self.rust = rust if rust is not None and self._agrees(rust) else None

    def _agrees(self, rust: Any) -> bool:
        try:
            for text in _PROBES:
                for special in (True, False):
                    ids = self.tokenizer(text, add_special_tokens=special)["input_ids"]
                    if rust.encode(text, add_special_tokens=special).ids != ids:
                        return False
                    if rust.decode(ids, skip_special_tokens=True) != self._wrapper_decode(ids):
                        return False
        except Exception:  # any surprise: the wrapper is the reference
            return False
        return True

    def _wrapper_decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self.rust is not None:
            return [e.ids for e in self.rust.encode_batch(list(texts), add_special_tokens=True)]
        return self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]

    def encode(self, text: str) -> list[int]:
        if self.rust is not None:
            return self.rust.encode(text, add_special_tokens=False).ids
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        if self.rust is not None:
            return self.rust.decode(list(ids), skip_special_tokens=True)
        return self._wrapper_decode(ids)

    def decode_batch(self, rows: Sequence[Sequence[int]]) -> list[str]:
        if self.rust is not None:
            return self.rust.decode_batch([list(r) for r in rows], skip_special_tokens=True)
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True, clean_up_tokenization_spaces=False)
