"""Which windows an evaluation runs and which of their positions it scores (docs/techniques.md).

A window starting at `start` feeds inputs `tokens[start : start+length]` and predicts targets
`tokens[start+1 : start+length+1]`; it scores its positions `[score_from, length)`. Target
position p means "predict tokens[p+1] from tokens[..p]".

- standard: non-overlapping windows of T over the first ⌊(N−1)/T⌋·T targets (the contest's
  `eval_val`; a partial tail is not scored).
- sliding: starts 0, S, 2S, …; window 0 scores everything, later windows their last S
  positions, so each target sees ≥ T−S tokens of context. Every target 0…N−2 is scored exactly
  once: the stream ends with the first window that reaches the last target. `legacy_tail=True`
  reproduces the records' loop, which keeps every start below N−1 and so re-scores the final
  targets in each tail window.
- document chunks (`document_windows`): the stream split at BOS into documents; each document
  scored in chunks of S targets, each window holding up to T tokens of that document only. A
  document's targets run from its BOS to its last token (which predicts the next BOS). Windows
  carry their document and a `group`: documents are taken in batches of consecutive documents,
  and group g holds chunk c of every document of one batch, so chunk c of a document is scored
  before its chunk c+1, and a batch is done before the next begins. `short_chunks` (#2014's
  short-document score-first steps): [(length, chunk), …] ascending; a batch whose longest
  document (the record's length: its targets and one) is at most `length` is cut into chunks of
  `chunk` (the first that applies), so a batch of short documents takes more, smaller
  score-then-adapt steps. The choice reads documents' lengths, so it is made once, from the whole
  stream, and travels with the evaluation view's layout (pgolf.evaluate.order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgolf.errors import ConfigError, DataError
from pgolf.data.scoring import usable_targets


@dataclass(frozen=True)
class Window:
    start: int
    length: int
    score_from: int
    doc: int = -1  # document index (document windows only)
    group: int = -1  # scoring batch (document windows only); -1: the pipeline batches by count
    batch: int = -1  # the batch of documents it belongs to (document windows only)
    slot: int = -1  # its document's place in that batch

    @property
    def scored(self) -> range:
        """Target positions (stream indices) this window scores."""
        return range(self.start + self.score_from, self.start + self.length)


def standard_windows(n_tokens: int, seq_len: int) -> list[Window]:
    return [Window(s, seq_len, 0) for s in range(0, usable_targets(n_tokens, seq_len), seq_len)]


def sliding_windows(n_tokens: int, seq_len: int, stride: int, legacy_tail: bool = False) -> list[Window]:
    if not 0 < stride <= seq_len:
        raise ConfigError(f"sliding stride must be in 1..seq_len ({seq_len}), got {stride}")
    total = n_tokens - 1  # number of targets
    if total <= 0:
        raise DataError("the validation split has fewer than two tokens")
    windows = []
    for start in range(0, total, stride):
        length = min(start + seq_len, total) - start
        score_from = 0 if start == 0 else max(length - stride, 0)
        windows.append(Window(start, length, score_from))
        if not legacy_tail and start + length >= total:
            break
    if not legacy_tail:
        # The last window may overlap what the one before it scored; score only what is new.
        fixed, covered = [], 0
        for w in windows:
            first = max(w.start + w.score_from, covered)
            fixed.append(Window(w.start, w.length, first - w.start))
            covered = w.start + w.length
        windows = fixed
    return windows


def document_starts(tokens: np.ndarray, bos_id: int) -> np.ndarray:
    """Start of every document: each BOS, and position 0 when the stream does not begin with one."""
    starts = np.flatnonzero(np.asarray(tokens) == bos_id)
    if starts.size == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return starts.astype(np.int64)


def document_batches(n_docs: int, batch_docs: int, sizes=None) -> list[range]:
    """Consecutive documents per batch: `sizes` while they last (a view's queue), then batch_docs each."""
    out, first = [], 0
    for size in list(sizes if sizes is not None else []):
        if first >= n_docs:
            break
        out.append(range(first, min(first + int(size), n_docs)))
        first += int(size)
    out += [range(f, min(f + batch_docs, n_docs)) for f in range(first, n_docs, batch_docs)]
    return out


def check_short_chunks(short_chunks, seq_len: int | None = None) -> list[tuple[int, int]]:
    """[(length, chunk), …] with positive entries and lengths strictly ascending; chunks ≤ seq_len."""
    steps = [(int(a), int(b)) for a, b in (short_chunks or [])]
    if any(a <= 0 or b <= 0 for a, b in steps) or any(x[0] >= y[0] for x, y in zip(steps, steps[1:])):
        raise ConfigError(f"short_chunks must be [[length, chunk], ...] with positive values and lengths "
                          f"ascending, got {short_chunks}")
    if seq_len is not None and any(b > seq_len for _, b in steps):
        raise ConfigError(f"short_chunks: every chunk must be at most seq_len ({seq_len}), got {short_chunks}")
    return steps


def batch_chunk(longest: int, chunk: int, short_chunks: list[tuple[int, int]]) -> int:
    """The chunk a batch is cut into: the first short step whose length holds its longest document
    (`longest` targets; the record's document length counts one token more, the next BOS)."""
    return next((c for limit, c in short_chunks if longest + 1 <= limit), chunk)


def short_batch_chunks(tokens: np.ndarray, bos_id: int, chunk: int, batch_docs: int, batch_sizes,
                       short_chunks) -> np.ndarray:
    """Each batch's chunk under `short_chunks`, from the documents' lengths alone."""
    steps = check_short_chunks(short_chunks)
    total = tokens.size - 1
    starts = document_starts(tokens[:total], bos_id)
    ends = np.append(starts[1:], total)
    return np.array([batch_chunk(int(max(ends[d] - starts[d] for d in docs)), chunk, steps)
                     for docs in document_batches(starts.size, batch_docs, batch_sizes)], dtype=np.int64)


def document_windows(tokens: np.ndarray, bos_id: int, seq_len: int, chunk: int, batch_docs: int,
                     batch_sizes=None, batch_chunks=None) -> list[Window]:
    """Windows in scoring order (see the module docstring). Every target 0…N−2 is scored once.
    `batch_chunks`: each batch's own chunk (short_batch_chunks), `chunk` for every batch when None."""
    if not 0 < chunk <= seq_len:
        raise ConfigError(f"document chunk must be in 1..seq_len ({seq_len}), got {chunk}")
    if batch_chunks is not None and any(not 0 < int(c) <= seq_len for c in batch_chunks):
        raise ConfigError(f"short_chunks: every chunk must be in 1..seq_len ({seq_len})")
    if batch_docs < 1:
        raise ConfigError(f"batch_docs must be >= 1, got {batch_docs}")
    total = tokens.size - 1
    if total <= 0:
        raise DataError("the validation split has fewer than two tokens")
    starts = document_starts(tokens[:total], bos_id)
    ends = np.append(starts[1:], total)  # targets of document d: positions starts[d] … ends[d]−1
    out: list[Window] = []
    group = 0
    for b, docs in enumerate(document_batches(starts.size, batch_docs, batch_sizes)):
        longest = max(int(ends[d] - starts[d]) for d in docs)
        size = int(batch_chunks[b]) if batch_chunks is not None and b < len(batch_chunks) else chunk
        for c in range(0, longest, size):
            added = False
            for d in docs:
                lo = int(starts[d]) + c
                if lo >= ends[d]:
                    continue
                hi = min(lo + size, int(ends[d]))
                begin = max(int(starts[d]), hi - seq_len)
                out.append(Window(begin, hi - begin, lo - begin, doc=d, group=group, batch=b, slot=d - docs.start))
                added = True
            group += added
    return out
