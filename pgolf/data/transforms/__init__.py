"""Text transforms applied to each document before tokenization (`pgolf data build --transform`).

A transform is bijective on text: `decode(encode(x)) == x` for every string. Its output may hold
operator characters that carry no bytes of the original: every original UTF-8 byte is one byte of
the encoded text, and `original_bytes` marks which ones, which is what the per-token byte sidecar
charges (data/sidecar.py).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pgolf.registry import Registry


class TextTransform(Protocol):
    name: str
    # characters the tokenizer must hold as single pieces (SentencePiece user_defined_symbols)
    reserved: tuple[str, ...]

    def encode(self, text: str) -> str: ...

    def decode(self, text: str) -> str: ...

    def original_bytes(self, encoded: bytes) -> np.ndarray: ...  # bool per byte of the encoded UTF-8


TRANSFORMS: Registry[TextTransform] = Registry("text transform")
