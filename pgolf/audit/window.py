"""Which settings the audit's reruns use, so that a short window sees every adaptive method active.

Future invariance needs reruns, so it runs on a window; a window proves nothing about a method it
never saw adapt. Each method says how to make it update at least twice inside a window
(`EvalMethod.window_settings`: chunks of at most a quarter of the window) and how long its
warm-up is (`warmup_tokens`, e.g. Hedge's `min_tokens`). From that the audit picks its window:
long enough for two updates past every warm-up, or, when the user fixed a shorter one, it says
which method it cannot see adapt (the coverage check then fails).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pgolf.config import Preset, from_dict
from pgolf.evaluate.methods.base import load_methods
from pgolf.evaluate.pipeline import method_config

DEFAULT_WINDOW = 8192


@dataclass
class AuditSettings:
    window: int  # targets the reruns cover
    overrides: dict[str, dict] = field(default_factory=dict)  # per [evaluation.<section>]
    notes: list[str] = field(default_factory=list)  # what was shrunk, said in the report
    needed: dict[str, int] = field(default_factory=dict)  # per method: targets to see it active
    warmups: dict[str, int] = field(default_factory=dict)

    def too_short(self) -> list[str]:
        return [m for m, n in self.needed.items() if n > self.window]


def _settings(preset: Preset, names: list[str], overrides: dict | None, window: int, probe: bool):
    registry = load_methods(names)
    merged = {k: dict(v) for k, v in (overrides or {}).items()}
    notes, needed, warmups = [], {}, {}
    for name in names:
        cls = registry.get(name)
        base = method_config(preset, cls, merged)
        cfg = from_dict(cls.Options, base, where=f"evaluation.{cls.section}")
        change = cls.window_settings(cfg, window, preset.eval.seq_len, probe)
        if change:
            merged.setdefault(cls.section, {}).update(change)
            was = ", ".join(f"{k} {getattr(cfg, k)} -> {v}" for k, v in change.items())
            notes.append(f"{name}: {was}")
            cfg = from_dict(cls.Options, {**base, **change}, where=f"evaluation.{cls.section}")
        warmups[name] = cls.warmup_tokens(cfg)
        chunk = getattr(cfg, "chunk_tokens", 0)
        if chunk and cls.role in ("adapt", "mix"):
            # updates land at chunk ends; two of them, one past the warm-up, then positions after it
            needed[name] = (max(math.ceil(warmups[name] / chunk), 2) + 1) * chunk
    return merged, notes, needed, warmups


def audit_settings(preset: Preset, names: list[str], overrides: dict | None = None,
                   window: int | None = None) -> AuditSettings:
    """`window` None: the smallest window ≥ 8192 targets that covers every method's active regime."""
    merged, notes, needed, warmups = _settings(preset, names, overrides, window or DEFAULT_WINDOW, probe=False)
    chosen = window or max([DEFAULT_WINDOW, *needed.values()])
    if window is None and chosen > DEFAULT_WINDOW:
        notes.append(f"window grown to {chosen:,} targets to pass every warm-up "
                     + ", ".join(f"({m}: {w:,})" for m, w in warmups.items() if w))
    return AuditSettings(chosen, merged, notes, needed, warmups)


def probe_settings(preset: Preset, names: list[str], overrides: dict | None, window: int,
                   seq_len: int) -> AuditSettings:
    """Settings for the black-box normalization probe: windows of `seq_len`, one per batch, and
    every adaptive method updating (warm-up included) inside `window` targets."""
    merged, notes, needed, warmups = _settings(preset, names, overrides, window, probe=True)
    for section in ("standard", "sliding"):
        merged.setdefault(section, {}).update(seq_len=seq_len, batch_windows=1)
    merged["sliding"]["stride"] = max(seq_len // 4, 1)
    for section in ("slot", "slot_causal"):
        merged.setdefault(section, {})["batch_windows"] = 1
    notes.append(f"windows of {seq_len} targets, one window per batch")
    return AuditSettings(window, merged, notes, needed, warmups)
