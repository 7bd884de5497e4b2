"""What the pipeline reports while it runs, kept for the audit's checks.

One recorder serves both uses: the audit's window (every position counted, a sample every
`sample_every` positions) and a whole evaluation (`samples` positions spread uniformly over the
entire stream). Either way it also samples the first scored position after each state update,
so a method that changes behaviour when it adapts is looked at right then; those extra samples
are spaced at least one uniform interval apart per (method, state), which bounds them for methods
that report an update at every position (hedge-normalized's running counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_EVIDENCE = 100  # flags keep their first examples; the totals count all of them


@dataclass
class UpdateViolation:
    method: str
    state: str
    span: tuple[int, int]
    used_from: int
    unscored: int  # how many of the span's targets were not yet scored when the update happened

    def describe(self) -> str:
        return (f"{self.method} updated its {self.state} on targets {self.span[0]}..{self.span[1] - 1} and uses it "
                f"to score positions from {self.used_from} ({self.unscored} of those targets not yet scored)")


@dataclass
class MethodUpdates:
    """How often a method updated its state, and from where its updated state was first used."""

    count: int = 0
    used_from: list[int] = field(default_factory=list)  # distinct, increasing; capped

    def add(self, used_from: int) -> None:
        self.count += 1
        if (not self.used_from or used_from > self.used_from[-1]) and len(self.used_from) < 100_000:
            self.used_from.append(used_from)


@dataclass
class AuditRecorder:
    n_targets: int
    sample_every: int = 97
    samples: int = 0  # > 0: spread this many samples uniformly over the whole stream instead
    counts: np.ndarray = field(init=False)
    order_ok: bool = True
    last_position: int = -1
    updates: int = 0
    by_method: dict[str, MethodUpdates] = field(default_factory=dict)
    violations: list[UpdateViolation] = field(default_factory=list)
    violation_count: int = 0
    masses: list[tuple[int, float]] = field(default_factory=list)
    # (position, scored nats, −log of the reported distribution at the target)
    consistency: list[tuple[int, float, float]] = field(default_factory=list)
    doc_starts: np.ndarray | None = None  # document windows: order is checked per document
    _doc_last: np.ndarray | None = None
    _after_update: int | None = None
    _last_post_sample: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start(self.n_targets)

    def start(self, n_targets: int) -> None:
        """Size the record for a stream of `n_targets` (a caller that learns it late calls this)."""
        self.n_targets = n_targets
        if self.samples > 0:
            self.sample_every = max(1, n_targets // self.samples)
        # one byte per target: a full contest stream (62 M targets) costs 62 MB
        self.counts = np.zeros(n_targets, dtype=np.uint8)

    # pipeline events ---------------------------------------------------------------------
    def on_documents(self, starts) -> None:
        """The stream is scored document by document: each document's targets must come in
        increasing order, documents may interleave (one batch holds a chunk of each)."""
        self.doc_starts = np.asarray(starts, dtype=np.int64)
        self._doc_last = np.full(self.doc_starts.size, -1, dtype=np.int64)

    def on_scored(self, positions, **_) -> None:
        positions = np.asarray(positions)
        if positions.size and self.doc_starts is not None:
            docs = np.searchsorted(self.doc_starts, positions, side="right") - 1
            order = np.argsort(docs, kind="stable")
            d, p = docs[order], positions[order]
            same = d[1:] == d[:-1]
            first = np.concatenate([[True], ~same])
            if (np.diff(p)[same] <= 0).any() or (p[first] <= self._doc_last[d[first]]).any():
                self.order_ok = False
            np.maximum.at(self._doc_last, d, p)
            self.last_position = max(self.last_position, int(positions.max()))
        elif positions.size:
            if positions[0] <= self.last_position or (np.diff(positions) <= 0).any():
                self.order_ok = False
            self.last_position = int(positions[-1])
        np.add.at(self.counts, positions, 1)

    def on_update(self, method: str, state: str, spans, used_from: int) -> None:
        """An update is legal when every target it used lies before every position its state scores."""
        self.updates += 1
        self.by_method.setdefault(method, MethodUpdates()).add(int(used_from))
        for first, last in spans:
            if last > used_from:
                self.violation_count += 1
                if len(self.violations) < MAX_EVIDENCE:
                    unscored = int((self.counts[first:last] == 0).sum())
                    self.violations.append(UpdateViolation(method, state, (int(first), int(last)), int(used_from),
                                                           unscored))
        key = (method, state)
        if used_from - self._last_post_sample.get(key, -self.sample_every) >= self.sample_every:
            self._last_post_sample[key] = int(used_from)
            self._after_update = int(used_from) if self._after_update is None else min(self._after_update, used_from)

    def sample_rows(self, positions) -> np.ndarray:
        positions = np.asarray(positions)
        rows = positions % self.sample_every == 0
        if self._after_update is not None:
            later = np.nonzero(positions >= self._after_update)[0]
            if later.size:
                rows[later[0]] = True
                self._after_update = None
        return np.nonzero(rows)[0]

    def on_distribution(self, positions, mass, scored=None, at_target=None) -> None:
        """Σ_v p(v) of the distribution the method reports at sampled positions; with `scored` and
        `at_target`, the nats it scored there and −log of its reported distribution at the target."""
        positions = np.asarray(positions).tolist()
        self.masses.extend(zip(positions, np.asarray(mass).tolist()))
        if scored is not None:
            self.consistency.extend(zip(positions, np.asarray(scored).tolist(), np.asarray(at_target).tolist()))

    # summaries ----------------------------------------------------------------------------
    def active_from(self, method: str, warmup: int) -> int | None:
        """The first position scored with `method`'s state updated past its warm-up, if any."""
        seen = self.by_method.get(method)
        if seen is None:
            return None
        after = [u for u in seen.used_from if u >= warmup and u <= self.last_position]
        return after[0] if after else None

    def last_update(self) -> int:
        """The largest scored position from which an updated state was used (−1 when none)."""
        return max((u for m in self.by_method.values() for u in m.used_from if u <= self.last_position), default=-1)
