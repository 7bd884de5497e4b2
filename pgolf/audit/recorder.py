"""What the pipeline reports while it runs, kept for the audit's checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
class AuditRecorder:
    n_targets: int
    sample_every: int = 97
    counts: np.ndarray = field(init=False)
    order_ok: bool = True
    last_position: int = -1
    updates: int = 0
    violations: list[UpdateViolation] = field(default_factory=list)
    masses: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.n_targets, dtype=np.int32)

    # pipeline events ---------------------------------------------------------------------
    def on_scored(self, positions, **_) -> None:
        positions = np.asarray(positions)
        if positions.size:
            if positions[0] <= self.last_position or (np.diff(positions) <= 0).any():
                self.order_ok = False
            self.last_position = int(positions[-1])
        np.add.at(self.counts, positions, 1)

    def on_update(self, method: str, state: str, spans, used_from: int) -> None:
        """An update is legal when every target it used lies before every position its state scores."""
        self.updates += 1
        for first, last in spans:
            if last > used_from:
                unscored = int((self.counts[first:last] == 0).sum())
                self.violations.append(UpdateViolation(method, state, (int(first), int(last)), int(used_from), unscored))

    def sample_rows(self, positions) -> np.ndarray:
        positions = np.asarray(positions)
        return np.nonzero(positions % self.sample_every == 0)[0]

    def on_distribution(self, positions, mass) -> None:
        self.masses.extend(zip(np.asarray(positions).tolist(), np.asarray(mass).tolist()))
