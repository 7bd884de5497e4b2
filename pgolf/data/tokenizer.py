"""SentencePiece tokenizers and the contest's per-token byte tables.

The byte tables follow the contest's `val_bpb` exactly (docs/techniques.md):
- `boundary[v]`: control, unknown or unused pieces (and ids beyond the tokenizer's vocab);
- `base_bytes[v]`: 1 for a byte-fallback piece `<0xNN>`, 0 for a boundary piece, otherwise the
  UTF-8 length of the piece with one leading `▁` removed;
- `leading_space[v]`: the piece starts with `▁`.
A target y after input x then counts `base_bytes[y] + (leading_space[y] and not boundary[x])`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pgolf.io import atomic_write_bytes
from pgolf.errors import TokenizerError

SPACE_MARK = "\u2581"  # SentencePiece's "▁"


@dataclass(frozen=True)
class ByteTables:
    base_bytes: np.ndarray  # int64 [V]
    leading_space: np.ndarray  # bool [V]
    boundary: np.ndarray  # bool [V]
    # UTF-8 bytes of each piece without its leading-space mark ("" for control/unknown ids);
    # empty when the tables were not built from a tokenizer
    spellings: tuple[bytes, ...] = ()

    @property
    def size(self) -> int:
        return int(self.base_bytes.shape[0])


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_tokenizer(path: str | os.PathLike):
    """Load a SentencePiece model, with a one-line error for a missing or corrupt file."""
    import sentencepiece as spm

    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"{path}: tokenizer model not found")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as exc:
        raise TokenizerError(f"{path}: not a SentencePiece model ({exc})") from None


def train_tokenizer(
    texts: Iterable[str],
    out_prefix: str | os.PathLike,
    vocab_size: int,
    byte_fallback: bool = True,
    max_sentence_length: int = 16384,
    reserved: tuple[str, ...] = (),
):
    """Train a BPE model with the contest's trainer spec (ids pad=0, bos=1, eos=2, unk=3; NFKC;
    whitespace collapsed; no dummy prefix; digits split).

    One deliberate difference, on by default: `byte_fallback=True`, so characters outside the
    vocabulary cost real bytes instead of hiding inside `<unk>` (the published SP-1024 model has
    no byte fallback; pass `byte_fallback=False` to match it). `reserved` characters become
    pieces of their own (a text transform's operators), right after the control ids.
    """
    import sentencepiece as spm

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)

    def sentences() -> Iterator[str]:
        # SentencePiece trains on "sentences"; long documents are cut at line breaks so that
        # nothing is dropped for exceeding max_sentence_length.
        for text in texts:
            for line in text.splitlines():
                line = line.strip()
                while line:
                    yield line[:max_sentence_length]
                    line = line[max_sentence_length:]

    scratch = tempfile.TemporaryDirectory(prefix="pgolf-spm-")  # SentencePiece writes its files itself
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_prefix=str(Path(scratch.name) / "tokenizer"),
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=0.999,
            byte_fallback=byte_fallback,
            split_digits=True,
            normalization_rule_name="nmt_nfkc",
            add_dummy_prefix=False,
            remove_extra_whitespaces=True,
            pad_id=0,
            bos_id=1,
            eos_id=2,
            unk_id=3,
            user_defined_symbols=list(reserved),
            max_sentence_length=max_sentence_length,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
        for suffix in (".vocab", ".model"):  # whole or not at all, the model last
            atomic_write_bytes(Path(f"{out_prefix}{suffix}"), (Path(scratch.name) / f"tokenizer{suffix}").read_bytes())
    except RuntimeError as exc:
        raise TokenizerError(f"training a {vocab_size}-piece tokenizer failed: {exc}") from None
    finally:
        scratch.cleanup()
    return load_tokenizer(f"{out_prefix}.model")


def build_byte_tables(sp, table_size: int | None = None) -> ByteTables:
    """The contest's bpb lookup tables over max(table_size, sp vocab) ids."""
    sp_vocab = sp.vocab_size()
    size = max(sp_vocab, table_size or 0)
    base = np.zeros(size, dtype=np.int64)
    lead = np.zeros(size, dtype=bool)
    boundary = np.ones(size, dtype=bool)
    spellings = [b""] * size
    for i in range(sp_vocab):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):  # "<0xAB>"
            base[i] = 1
            spellings[i] = bytes([int(piece[3:5], 16)])
            continue
        if piece.startswith(SPACE_MARK):
            lead[i] = True
            piece = piece[1:]
        spellings[i] = piece.encode("utf-8")
        base[i] = len(spellings[i])
    return ByteTables(base_bytes=base, leading_space=lead, boundary=boundary, spellings=tuple(spellings))


class Normalizer:
    """Reusable normalizer for many documents (building one is not free)."""

    def __init__(self, sp_model_path: str | os.PathLike) -> None:
        import sentencepiece as spm

        self._n = spm.SentencePieceNormalizer(model_file=str(sp_model_path))

    def __call__(self, text: str) -> str:
        return self._n.normalize(text).replace(SPACE_MARK, " ")
