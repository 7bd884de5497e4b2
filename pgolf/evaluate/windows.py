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
"""

from __future__ import annotations

from dataclasses import dataclass

from pgolf.errors import ConfigError, DataError
from pgolf.scoring import usable_targets


@dataclass(frozen=True)
class Window:
    start: int
    length: int
    score_from: int

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
