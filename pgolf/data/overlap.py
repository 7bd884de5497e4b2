"""Validation documents found in training data, by fingerprint (the contest's excluded #2018/#2130
trained on 40,000 of the 50,000 scored documents; their logs' `train_shards` was the only trace).

A document's fingerprint is a sample of the hashes of its token n-gram windows (`window` tokens
each; a window is kept when its hash is 0 modulo `sample`, so the same windows are kept wherever the
text appears). A training stream is hashed the same way, block by block, and each validation
document counts the fingerprints of its own that occur there. A document is *found* when at least
`min_share` of its fingerprints occur: an exact copy matches all of them, a copy with one token in a
hundred changed about 85 % (a change spoils the `window` windows over it), while the few n-grams a
document shares with boilerplate elsewhere stay far below the threshold. Documents shorter than one
window are fingerprinted by the hash of all their tokens, kept whatever its value.

Hashes are polynomial over uint64 (numpy wraps modulo 2^64), computed with `window` vectorised
passes over a block, so a 100 M-token shard costs a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WINDOW = 16
SAMPLE = 8
MIN_SHARE = 0.5
BASE = np.uint64(0x100000001B3)  # the FNV-64 prime: odd, so no window collapses
BLOCK = 1 << 24  # tokens hashed at once (about 400 MB of temporaries)


def window_hashes(tokens: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The hash of every `window`-token window of `tokens` (len − window + 1 of them)."""
    t = np.asarray(tokens).astype(np.uint64) + np.uint64(1)  # + 1: a run of zeros still moves the hash
    n = t.size - window + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(window):
            h = h * BASE + t[j : j + n]
    return h


def whole_hash(tokens: np.ndarray) -> np.uint64:
    """One hash of a short document's tokens (its length mixed in, so a prefix never matches it)."""
    h = np.uint64(len(tokens))
    with np.errstate(over="ignore"):
        for v in np.asarray(tokens).astype(np.uint64):
            h = h * BASE + v + np.uint64(1)
    return h


def sampled(hashes: np.ndarray, sample: int) -> np.ndarray:
    return hashes[hashes % np.uint64(sample) == 0]


def split_documents(tokens: np.ndarray, bos_id: int) -> list[tuple[int, np.ndarray]]:
    """(start, tokens) of every document of a stream, cut before each BOS (BOS kept)."""
    starts = np.flatnonzero(np.asarray(tokens) == bos_id)
    if starts.size == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    ends = np.append(starts[1:], tokens.size)
    return [(int(a), tokens[a:b]) for a, b in zip(starts, ends) if b > a]


@dataclass
class Fingerprints:
    """Sampled window hashes of every validation document: `hashes` sorted, `docs` the document each
    belongs to (a hash two documents share is kept once per document)."""

    hashes: np.ndarray
    docs: np.ndarray
    per_doc: np.ndarray  # fingerprints of each document
    starts: np.ndarray  # each document's first token in the validation stream
    window: int = WINDOW
    sample: int = SAMPLE
    short: dict = field(default_factory=dict)  # whole-document hash -> documents (shorter than a window)

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pairs, counts, hit): the (hash, document) pairs of `hashes` that are fingerprints — a
        hash several documents share (boilerplate) gives one pair per document — how many pairs
        each hit hash has, and which of `hashes` hit."""
        left = np.searchsorted(self.hashes, hashes, side="left")
        right = np.searchsorted(self.hashes, hashes, side="right")
        hit = right > left
        pairs, counts = expand_ranges(left[hit], right[hit])
        return pairs, counts, hit

    @classmethod
    def of(cls, docs: list[tuple[int, np.ndarray]], window: int = WINDOW, sample: int = SAMPLE) -> "Fingerprints":
        hashes, owners, per_doc, short = [], [], np.zeros(len(docs), dtype=np.int64), {}
        for i, (_, toks) in enumerate(docs):
            if toks.size < window:
                short.setdefault(int(whole_hash(toks)), []).append(i)
                per_doc[i] = 1
                continue
            h = np.unique(sampled(window_hashes(toks, window), sample))
            if h.size == 0:  # no window sampled: keep the smallest, so every document has one
                h = np.array([window_hashes(toks, window).min()], dtype=np.uint64)
            hashes.append(h)
            owners.append(np.full(h.size, i, dtype=np.int64))
            per_doc[i] = h.size
        hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        owners = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        return cls(hashes[order], owners[order], per_doc, np.array([s for s, _ in docs], dtype=np.int64),
                   window, sample, short)


def expand_ranges(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every index of the ranges [left_i, right_i), and how many each range holds (no Python loop)."""
    counts = right - left
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(left, counts) + offsets, counts


@dataclass
class Overlap:
    """What a scan found: per validation document, its fingerprints seen in training, where the
    first one was seen, and where the copy lies — the median of its fingerprints' first positions,
    which a stray shared phrase earlier in training does not move (training token positions, −1:
    never)."""

    matched: np.ndarray
    first_seen: np.ndarray
    per_doc: np.ndarray
    scanned_tokens: int = 0
    min_share: float = MIN_SHARE
    located: np.ndarray | None = None

    @property
    def share(self) -> np.ndarray:
        return self.matched / np.maximum(self.per_doc, 1)

    @property
    def found(self) -> np.ndarray:
        """Indices of the validation documents found in training."""
        return np.flatnonzero(self.share >= self.min_share)


class OverlapScanner:
    """Feed training token streams (`scan`, in order); then `result()`."""

    def __init__(self, fingerprints: Fingerprints, min_share: float = MIN_SHARE, bos_id: int | None = None) -> None:
        self.fp, self.min_share, self.bos_id = fingerprints, min_share, bos_id
        n = fingerprints.per_doc.size
        self.seen = np.zeros(fingerprints.hashes.size, dtype=bool)  # which (hash, document) pairs occurred
        self.pair_first = np.full(fingerprints.hashes.size, -1, dtype=np.int64)  # where each pair first did
        self.short_first = np.full(n, -1, dtype=np.int64)  # where each short document was first seen whole
        self.short_seen = np.zeros(n, dtype=bool)
        self.doc_seen = np.zeros(n, dtype=np.int64)  # fingerprints of each document admitted so far
        self.position = 0

    def scan(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        w, fp = self.fp.window, self.fp
        for lo in range(0, max(tokens.size - w + 1, 0), BLOCK):
            block = tokens[lo : lo + BLOCK + w - 1]
            h = window_hashes(block, w)
            keep = np.flatnonzero(h % np.uint64(fp.sample) == 0)
            pairs, counts, hit = fp.lookup(h[keep])
            seen_at = np.repeat(self.position + lo + keep[hit].astype(np.int64), counts)
            self.seen[pairs] = True
            # the first time each pair occurred (reversed: among repeats in a block the earliest lands last)
            new = self.pair_first[pairs] < 0
            self.pair_first[pairs[new][::-1]] = seen_at[new][::-1]
        if fp.short and self.bos_id is not None:
            for start, doc in split_documents(tokens, self.bos_id):
                if doc.size < w:
                    for d in fp.short.get(int(whole_hash(doc)), []):
                        self.short_seen[d] = True
                        if self.short_first[d] < 0:
                            self.short_first[d] = self.position + start
        self.position += tokens.size

    def admit(self, doc: np.ndarray) -> bool:
        """For a data build, before a training document is written: False when writing it would
        make some validation document *found* (its fingerprints seen in training so far plus in
        this document reach `min_share`), or when the document is itself mostly validation windows
        (a part of a validation document); True otherwise, and its fingerprints count as seen.
        So a scan of what was admitted finds nothing."""
        fp, w = self.fp, self.fp.window
        if doc.size < w:
            return int(whole_hash(doc)) not in fp.short
        own = np.unique(sampled(window_hashes(doc, w), fp.sample))
        if own.size == 0:
            return True
        pairs, _, inside = fp.lookup(own)
        if inside.mean() >= self.min_share:
            return False
        if pairs.size == 0:
            return True
        touched, owner = np.unique(fp.docs[pairs], return_inverse=True)
        fresh = ~self.seen[pairs]
        added = np.bincount(owner[fresh], minlength=touched.size)
        if ((self.doc_seen[touched] + added) / fp.per_doc[touched] >= self.min_share).any():
            return False
        self.seen[pairs[fresh]] = True
        self.doc_seen[touched] += added
        return True

    def result(self) -> Overlap:
        fp = self.fp
        matched = np.bincount(fp.docs[self.seen], minlength=fp.per_doc.size) + self.short_seen
        first, located = self.short_first.copy(), self.short_first.copy()
        hit = np.flatnonzero(self.pair_first >= 0)
        if hit.size:  # per document: the earliest and the median first position of its matched fingerprints
            docs, at = fp.docs[hit], self.pair_first[hit]
            order = np.lexsort((at, docs))
            docs, at = docs[order], at[order]
            starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
            ends = np.r_[starts[1:], docs.size]
            first[docs[starts]] = at[starts]
            located[docs[starts]] = at[(starts + ends - 1) // 2]
        return Overlap(matched, first, fp.per_doc, self.position, self.min_share, located)


def find_overlap(val_tokens: np.ndarray, train_streams, bos_id: int, window: int = WINDOW, sample: int = SAMPLE,
                 min_share: float = MIN_SHARE) -> tuple[Overlap, Fingerprints]:
    """Validation documents of `val_tokens` found in the training streams (an iterable of arrays)."""
    fp = Fingerprints.of(split_documents(np.asarray(val_tokens), bos_id), window, sample)
    scanner = OverlapScanner(fp, min_share, bos_id)
    for stream in train_streams:
        scanner.scan(stream)
    return scanner.result(), fp


@dataclass
class SplitOverlap:
    """A data directory's validation documents found in its own training shards."""

    overlap: Overlap
    val_docs: int
    val_tokens: int
    train_tokens: int
    shards: list[tuple[str, int]]  # (training shard name, its first token's position in the scan)
    doc_starts: np.ndarray  # each validation document's first token in the validation stream
    seconds: float = 0.0

    @property
    def found(self) -> np.ndarray:
        return self.overlap.found

    def position(self, pos: int) -> str:
        """A scan position as `shard:offset`."""
        name, start = self.shards[0]
        for n, s in self.shards:
            if s > pos:
                break
            name, start = n, s
        return f"{name}:{pos - start}"


def scan_data_dir(data_dir, bos_id: int | None = None, min_share: float = MIN_SHARE, progress=None) -> SplitOverlap:
    """Fingerprint every validation document of `data_dir` and scan its training shards for them
    (one shard at a time, memory-mapped). `progress(done_tokens, total_tokens)` is called per shard."""
    import time

    from pgolf.data.build import read_manifest
    from pgolf.data.shards import list_shards, load_split, read_header, read_shard

    t0 = time.perf_counter()
    bos = int((read_manifest(data_dir) or {}).get("bos_id", 1)) if bos_id is None else bos_id
    val = np.asarray(load_split(data_dir, "val"))
    fp = Fingerprints.of(split_documents(val, bos))
    scanner = OverlapScanner(fp, min_share, bos)
    shards, total = list_shards(data_dir, "train"), 0
    sizes = [read_header(p) for p in shards]
    starts = []
    for path, size in zip(shards, sizes):
        starts.append((path.name, scanner.position))
        scanner.scan(np.asarray(read_shard(path)))
        total += size
        if progress:
            progress(total, sum(sizes))
    return SplitOverlap(scanner.result(), fp.per_doc.size, int(val.size), total, starts or [("", 0)],
                        fp.starts, time.perf_counter() - t0)
