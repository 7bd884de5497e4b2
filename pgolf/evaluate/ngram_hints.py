"""Causal token n-gram hints: at each position t, the token that most often followed the longest
context of the prefix that was seen before, and how often it did.

At target position t (input x_t, target x_{t+1}), for orders k = `max_order` … `min_order`, the
context is the k−1 inputs x_{t−k+2} … x_t; its history is every earlier position s < t with the
same context, and the continuations counted are their targets x_{s+1} — all of them tokens the
evaluation has already scored, since s < t. The hint is the most frequent continuation of the
longest context with any history (ties: the continuation that reached the count first), with its
count and the history's size. Nothing at t reads x_{t+1}.

Computed for the whole stream in one vectorised pass per order (sort positions by context, count
each continuation's running total within a context, carry the running best forward), so a
47.9 M-token split costs `max_order` sorts; `reference_hints` is the same definition written as a
dictionary walk, for the tests. Contexts are hashed to 64 bits (a merge of two contexts would
only change which hint is given, never look at a later token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgolf.evaluate.ngram import prefix_counts

BASE = np.uint64(0x100000001B3)


@dataclass
class Hints:
    token: np.ndarray  # hinted continuation per target position (−1: none)
    count: np.ndarray  # how often it followed the context before t
    seen: np.ndarray  # how often the context occurred before t
    order: np.ndarray  # the order it came from (0: none)


def context_hashes(inputs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash of x_{t−k+2} … x_t, valid) for every position t; invalid where the context would start
    before the stream."""
    n = inputs.size
    h = np.full(n, np.uint64(k), dtype=np.uint64)
    t = inputs.astype(np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        for j in range(k - 1, 0, -1):  # oldest first: x_{t−j+1}
            shifted = np.zeros(n, dtype=np.uint64)
            if j - 1 < n:
                shifted[j - 1:] = t[: n - j + 1]
            h = h * BASE + shifted
    valid = np.arange(n) >= k - 2
    return h, valid


def order_hints(inputs: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one order: (best continuation, its count, context occurrences) before each position."""
    n = inputs.size
    keys, valid = context_hashes(inputs, k)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    order = idx[np.lexsort((idx, keys[idx]))]  # by context, then by position
    ks = keys[order]
    new_group = np.r_[True, ks[1:] != ks[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(order.size), 0))
    seen = np.arange(order.size) - group_start  # occurrences before, within the context
    # running count of each (context, continuation) pair, inclusive: the pair as one exact key
    # (the context's rank among contexts, then the token), counted in this position order
    ys = targets[order].astype(np.int64)
    pair_keys = (np.cumsum(new_group) - 1) * (int(ys.max()) + 1) + ys
    inclusive = prefix_counts(pair_keys) + 1
    # running best within the context: the largest count so far, whose leader changes only when a
    # count rises strictly above it (so ties keep the continuation that reached the count first).
    # A segmented running max without overflow: shift each context's counts (1 … its size) above
    # every earlier context's by its start index.
    shifted = inclusive + group_start
    running = np.maximum.accumulate(shifted)
    rise = new_group | (running > np.r_[np.int64(-1), running[:-1]])
    leader = np.maximum.accumulate(np.where(rise, np.arange(order.size), 0))
    # the hint at an occurrence is the best *before* it: the previous occurrence's leader
    has = ~new_group
    prev = np.flatnonzero(has) - 1
    tok = np.full(order.size, -1, dtype=np.int64)
    cnt = np.zeros(order.size, dtype=np.int64)
    tok[has] = ys[leader[prev]]
    cnt[has] = running[prev] - group_start[prev]
    out_tok, out_cnt, out_seen = np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    out_tok[order], out_cnt[order], out_seen[order] = tok, cnt, seen
    return out_tok, out_cnt, out_seen


def causal_hints(stream: np.ndarray, max_order: int = 16, min_order: int = 2) -> Hints:
    """Hints for every target position of `stream` (len − 1 of them)."""
    stream = np.asarray(stream, dtype=np.int64)
    inputs, targets = stream[:-1], stream[1:]
    n = inputs.size
    token, count, seen, order = (np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64),
                                 np.zeros(n, np.int64))
    for k in range(max_order, min_order - 1, -1):
        tok, cnt, occ = order_hints(inputs, targets, k)
        take = (order == 0) & (occ > 0)
        token[take], count[take], seen[take], order[take] = tok[take], cnt[take], occ[take], k
    return Hints(token, count, seen, order)


def reference_hints(stream, max_order: int = 16, min_order: int = 2) -> Hints:
    """The definition walked position by position with dictionaries (tests only: slow)."""
    stream = [int(v) for v in stream]
    n = len(stream) - 1
    tables: dict[int, dict[tuple, dict[int, list]]] = {k: {} for k in range(min_order, max_order + 1)}
    out = Hints(np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))
    for t in range(n):
        for k in range(max_order, min_order - 1, -1):
            if t < k - 2:
                continue
            ctx = tuple(stream[t - k + 2: t + 1])
            hist = tables[k].get(ctx)
            if hist:
                # largest count; ties: the continuation that reached that count first
                best = max(hist.items(), key=lambda kv: (kv[1][0], -kv[1][1]))
                out.token[t], out.count[t] = best[0], best[1][0]
                out.seen[t], out.order[t] = sum(v[0] for v in hist.values()), k
                break
        y = stream[t + 1]
        for k in range(min_order, max_order + 1):
            if t < k - 2:
                continue
            hist = tables[k].setdefault(tuple(stream[t - k + 2: t + 1]), {})
            c = hist.get(y, [0, 0])
            hist[y] = [c[0] + 1, t]  # count, and when it last rose (the reach time of this count)
    return out
