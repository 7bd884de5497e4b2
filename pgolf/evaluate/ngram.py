"""An online interpolated n-gram model over a token stream, exact and causal.

At target position t (input x_t, target x_{t+1}) it gives a proper distribution over the
vocabulary from the targets of positions < t only:

    p_1(y) = (n(y) + a) / (N_t + a·V)                       N_t = t targets counted so far
    p_k(y) = (n(c_k, y) + β·p_{k−1}(y)) / (n(c_k) + β)      c_k = inputs x_{t−k+2} … x_t (k−1 tokens)

Σ_y p_k(y) = 1 at every order because Σ_y n(c, y) = n(c) exactly: both counts run over the same
positions. Contexts that do not fit a 64-bit key exactly are hashed; a hash merges contexts but
keeps that identity, so the distribution stays normalized.

Counting is vectorised: a position's counts combine the committed tables (sorted key arrays,
looked up with `searchsorted`) with the not yet committed positions before it (a stable sort
ranks repeated keys in stream order).
`full_distribution` recomputes a position's whole distribution by brute force over the prefix;
tests and the audit compare the two.
"""

from __future__ import annotations

import numpy as np

from pgolf.errors import ConfigError

_MIX = np.uint64(0x9E3779B97F4A7C15)
_PAD = -1  # before the stream: a context slot that no token fills


def context_keys(inputs: np.ndarray, first: int, k: int, vocab: int) -> np.ndarray:
    """Key of c_k = (x_{t−k+2} … x_t) for positions t = first … first+len−1, where `inputs` is the
    stream x_0 … (at least up to the last position). k−1 = 0 gives one shared key."""
    n = inputs.size - first
    key = np.zeros(max(n, 0), dtype=np.int64)
    base = vocab + 1
    exact = base ** (k - 1) * vocab < (1 << 62)
    for j in range(k - 1, 0, -1):  # oldest token first
        src = np.arange(first, inputs.size) - (j - 1)
        tok = np.where(src >= 0, inputs[np.maximum(src, 0)], _PAD).astype(np.int64) + 1
        if exact:
            key = key * base + tok
        else:  # multiplicative mixing, kept below 2^62 / V so pair keys cannot overflow
            mixed = (key.astype(np.uint64) ^ tok.astype(np.uint64)) * _MIX
            key = (mixed >> np.uint64(24)).astype(np.int64) % ((1 << 62) // vocab)
    return key


def prefix_counts(keys: np.ndarray) -> np.ndarray:
    """How many times each key occurred earlier in the array."""
    order = np.argsort(keys, kind="stable")
    srt = keys[order]
    starts = np.r_[0, np.flatnonzero(srt[1:] != srt[:-1]) + 1] if srt.size else np.zeros(0, np.int64)
    run_start = np.repeat(starts, np.diff(np.r_[starts, srt.size]))
    out = np.empty(keys.size, dtype=np.int64)
    out[order] = np.arange(srt.size) - run_start
    return out


class CountTable:
    """Key → count, as sorted arrays; merged one segment at a time."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        if not self.keys.size:
            return np.zeros(keys.size, dtype=np.int64)
        i = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return np.where(self.keys[i] == keys, self.counts[i], 0)

    def add(self, keys: np.ndarray) -> None:
        new, cnt = np.unique(keys, return_counts=True)
        merged, inverse = np.unique(np.r_[self.keys, new], return_inverse=True)
        counts = np.zeros(merged.size, dtype=np.int64)
        np.add.at(counts, inverse, np.r_[self.counts, cnt])
        self.keys, self.counts = merged, counts


class OnlineNgram:
    """`extend_to(end)` computes positions up to `end` from the committed tables plus the
    uncommitted positions before each one; `commit(end)` moves the targets of positions < end into
    the tables (the pipeline commits a chunk once it has been scored)."""

    def __init__(self, stream: np.ndarray, vocab: int, order: int, unigram_smoothing: float,
                 backoff: float) -> None:
        if order < 1:
            raise ConfigError(f"n-gram order must be ≥ 1, got {order}")
        self.stream = np.asarray(stream)  # the evaluation's own stream, read in place (the audit's probe
        # writes candidate targets into it); slices are widened to int64 where they are used
        self.V, self.order, self.a, self.beta = vocab, order, unigram_smoothing, backoff
        self.n_targets = self.stream.size - 1
        self.prob = np.zeros(self.n_targets)  # p(target) at each position, valid below `done`
        self.context_counts = np.zeros((max(order - 1, 0), self.n_targets))  # n(c_k), k = 2…order
        self.done = 0  # positions computed
        self.committed = 0  # positions whose targets are in the tables
        self._ctx = [CountTable() for _ in range(order)]
        self._pair = [CountTable() for _ in range(order)]

    def _keys(self, lo: int, end: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(context keys, pair keys) of positions lo … end−1, order by order (order 1: no context)."""
        off = max(lo - self.order, 0)  # contexts reach back order−1 inputs; before `off` none is read
        inputs, targets = self.stream[off:end].astype(np.int64), self.stream[lo + 1 : end + 1].astype(np.int64)
        out = [(np.zeros(end - lo, dtype=np.int64), targets)]
        for k in range(2, self.order + 1):
            ctx = context_keys(inputs, lo - off, k, self.V)
            out.append((ctx, ctx * self.V + targets))
        return out

    def extend_to(self, end: int) -> None:
        end = min(end, self.n_targets)
        if end <= self.done:
            return
        base, lo = self.committed, self.done
        new = slice(lo - base, end - base)
        p = None
        for k, (ctx, pair) in enumerate(self._keys(base, end), start=1):
            n_ctx = (self._ctx[k - 1].lookup(ctx[new]) + prefix_counts(ctx)[new]).astype(np.float64)
            n_pair = self._pair[k - 1].lookup(pair[new]) + prefix_counts(pair)[new]
            if k == 1:
                p = (n_pair + self.a) / (n_ctx + self.a * self.V)
            else:
                p = (n_pair + self.beta * p) / (n_ctx + self.beta)
                self.context_counts[k - 2, lo:end] = n_ctx
        self.prob[lo:end] = p
        self.done = end

    def commit(self, end: int) -> None:
        end = min(end, self.n_targets)
        if end <= self.committed:
            return
        self.extend_to(end)  # positions below `end` are computed from the tables they were scored with
        for k, (ctx, pair) in enumerate(self._keys(self.committed, end), start=1):
            self._ctx[k - 1].add(ctx)
            self._pair[k - 1].add(pair)
        self.committed = end

    def full_distribution(self, t: int) -> np.ndarray:
        """p(·) at position t over the whole vocabulary, by brute force over the prefix."""
        inputs = self.stream[: t + 1].astype(np.int64)
        targets = inputs[1:]  # targets of positions < t
        p = (np.bincount(targets, minlength=self.V) + self.a) / (t + self.a * self.V)
        for k in range(2, self.order + 1):
            keys = context_keys(inputs, 0, k, self.V)
            same = keys[:t] == keys[t]
            counts = np.bincount(targets[same], minlength=self.V)
            p = (counts + self.beta * p) / (same.sum() + self.beta)
        return p
