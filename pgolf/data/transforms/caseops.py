"""CaseOps: lossless case factorisation of ASCII words (the 1.0679+ records' tokenizer input).

Every maximal run of ASCII letters is written in lower case, and its capitalisation moves into
operator characters placed before it (private-use code points, one SentencePiece piece each):

    lowercase word           unchanged                         "launch"  -> "launch"
    ≥ 2 letters, all upper   ALLCAPS + lowercase               "NASA"    -> ALLCAPS "nasa"
    first upper, rest lower  TITLE + lowercase                 "The"     -> TITLE "the"
    any other mix            [TITLE] + lowercase, CAPNEXT      "McDonald" -> TITLE "mc" CAPNEXT "donald"
                             before each later capital
    a literal operator char  ESC + the character

So a tokenizer learns one set of lowercase subwords for all case variants. The transform is
a bijection on all strings; `decode` rejects malformed text (an operator out of place).

Byte accounting: each byte of the original maps to one byte of the encoded text (a letter keeps
its one byte, lower-cased); the operators' bytes are the extra ones, except an escaped operator
character, which is original text.
"""

from __future__ import annotations

import re

import numpy as np

from pgolf.data.transforms import TRANSFORMS
from pgolf.errors import DataError

TITLE, ALLCAPS, CAPNEXT, ESC = "\ue001", "\ue002", "\ue003", "\ue004"
OPERATORS = frozenset((TITLE, ALLCAPS, CAPNEXT, ESC))
_WORD_OR_OPERATOR = re.compile(r"[A-Za-z]+|[\ue001-\ue004]")
_OPERATOR_BYTES = re.compile(rb"\xee\x80[\x81-\x84]")  # U+E001..U+E004 in UTF-8
_ESC_BYTES = ESC.encode("utf-8")


def _is_letter(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _encode_word(word: str) -> str:
    lower = word.lower()
    if word == lower:
        return word
    if len(word) >= 2 and word.isupper():
        return ALLCAPS + lower
    head = TITLE if word[0].isupper() else ""
    if head and word[1:] == lower[1:]:
        return head + lower
    return head + lower[0] + "".join(CAPNEXT + c.lower() if c.isupper() else c for c in word[1:])


class CaseOps:
    name = "caseops"
    reserved = (TITLE, ALLCAPS, CAPNEXT, ESC)

    def encode(self, text: str) -> str:
        def one(m: re.Match) -> str:
            s = m.group(0)
            return ESC + s if s in OPERATORS else _encode_word(s)

        return _WORD_OR_OPERATOR.sub(one, text)

    def decode(self, text: str) -> str:
        out: list[str] = []
        mode = ""  # the word operator waiting for its word: TITLE or ALLCAPS
        capnext = escaped = allcaps = in_word = False
        for i, ch in enumerate(text):
            if escaped:
                if ch not in OPERATORS:
                    raise DataError(f"caseops: ESC before {ch!r} (position {i}), not an operator character")
                out.append(ch)
                escaped = in_word = allcaps = False
                continue
            if ch in OPERATORS:
                if mode or capnext:
                    raise DataError(f"caseops: operator {ord(ch):#x} after another at position {i}")
                if ch == ESC:
                    escaped = True
                elif ch == CAPNEXT:
                    if not in_word:
                        raise DataError(f"caseops: CAPNEXT outside a word at position {i}")
                    capnext = True
                else:
                    if in_word:
                        raise DataError(f"caseops: word operator inside a word at position {i}")
                    mode = ch
                continue
            if not _is_letter(ch):
                if mode or capnext:
                    raise DataError(f"caseops: operator not followed by a letter at position {i}")
                out.append(ch)
                in_word = allcaps = False
                continue
            if ch.isupper():
                raise DataError(f"caseops: upper-case letter {ch!r} at position {i} (encoded text is lower case)")
            if not in_word:
                allcaps = mode == ALLCAPS
                out.append(ch.upper() if mode else ch)
                mode, in_word = "", True
            else:
                out.append(ch.upper() if allcaps or capnext else ch)
                capnext = False
        if mode or capnext or escaped:
            raise DataError("caseops: text ends with an operator")
        return "".join(out)

    def original_bytes(self, encoded: bytes) -> np.ndarray:
        mask = np.ones(len(encoded), dtype=bool)
        escaped_until = -1
        for m in _OPERATOR_BYTES.finditer(encoded):
            if m.start() < escaped_until:  # the literal character an ESC announced
                continue
            mask[m.start() : m.end()] = False
            if m.group(0) == _ESC_BYTES:
                escaped_until = m.end() + len(_ESC_BYTES)
        return mask


TRANSFORMS.register("caseops")(CaseOps())
