"""A sweep's definition: one TOML file naming the base preset, the budget of each trial, what is
scored, and the search space over any preset key (the same dotted paths as `--set`).

    preset = "cpu-mini"                 # base preset: built-in name or TOML path
    set = ["train.val_every=40"]        # fixed overrides for every trial
    trials = 24                         # finished trials (complete or pruned) the study stops at
    seeds = [1337]                      # each trial trains once per seed; the objective is the mean
    budget_seconds = 600                # training wallclock cap per run (or steps = N: a fixed step count,
                                        # or tokens = N: a fixed token count, so batch sizes compare at equal compute)
    methods = "standard"                # eval pipeline scored on the round-tripped artifact ("preset" = its own)
    limit_val_tokens = 0                # score only the first N validation tokens (0 = all)
    sampler = "tpe"                     # tpe | random
    pruner = "median"                   # median | halving | none (on intermediate validation, val_every)
    prune_after_step = 50               # no trial is pruned on a validation before this step
    mode = "optuna"                     # optuna | greedy

    [space."train.warmdown_fraction"]   # float range
    low = 0.2
    high = 0.9
    [space."train.matrix_lr"]           # log-uniform
    low = 0.01
    high = 0.1
    log = true
    [space."train.muon_momentum_warmup_steps"]   # integers: int bounds (or type = "int")
    low = 0
    high = 500
    [space."train.tokens_per_step"]     # a choice
    choices = [8192, 16384, 32768]

    [greedy]                            # mode = "greedy": forward selection over these candidates
    candidates = [["train.warmdown_fraction=0.6"], ["train.matrix_lr=0.05", "train.scalar_lr=0.05"]]

Everything is checked when the file loads: unknown keys (of this file or of the preset), empty
ranges, values of the wrong type for their preset key — each a one-line ConfigError.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgolf.config import Preset, from_dict
from pgolf.errors import ConfigError
from pgolf.job.preset import load_preset, with_overrides

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")
MODES = ("optuna", "greedy")


@dataclass
class Dimension:
    """One searched key: a float or int range (optionally log-scaled), or a list of choices."""

    key: str
    kind: str  # "float" | "int" | "categorical"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: list = field(default_factory=list)

    def values_to_check(self) -> list:
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass
class SweepFile:
    """The file's top-level keys, parsed by config.from_dict (unknown keys and types checked there)."""

    preset: str = ""
    set: list[str] = field(default_factory=list)
    trials: int = 20
    seeds: list[int] = field(default_factory=lambda: [1337])
    budget_seconds: float = 0.0
    steps: int = 0
    tokens: int = 0
    methods: str = "standard"
    limit_val_tokens: int = 0
    sampler: str = "tpe"
    pruner: str = "median"
    prune_after_step: int = 50
    mode: str = "optuna"
    keep_weights: bool = False
    space: dict = field(default_factory=dict)
    greedy: dict = field(default_factory=dict)


@dataclass
class Sweep:
    file: SweepFile
    dimensions: list[Dimension]
    candidates: list[list[str]]  # greedy mode
    base: Preset  # the base preset with the fixed overrides
    origin: str
    base_ref: str = ""  # the base as loaded: a built-in name, or its TOML path (relative to the sweep file resolved)
    extra_overrides: list[str] = field(default_factory=list)  # `--set` on the command line
    preset_override: str = ""  # `--base`: the same search on another base

    @property
    def study_name(self) -> str:
        """The file's stem, or stem-PRESET when `--base` replaced the file's base (another study)."""
        stem = Path(self.origin).stem
        return f"{stem}-{Path(self.preset_override).stem}" if self.preset_override else stem

    def base_value(self, key: str) -> Any:
        node: Any = self.base.to_dict()
        for part in key.split("."):
            node = node[part]
        return node

    def base_params(self) -> dict[str, Any] | None:
        """The base preset's values of the searched keys, when every one lies in its range (the
        sweep then scores the base first, as trial 0, so every result has its reference)."""
        out = {}
        for d in self.dimensions:
            v = self.base_value(d.key)
            inside = v in d.choices if d.kind == "categorical" else d.low <= v <= d.high
            if not inside:
                return None
            out[d.key] = v
        return out

    def budget_overrides(self, trial_preset: Preset) -> list[str]:
        """The trial budget as overrides, appended after the trial's own (so a trial cannot change
        it). A token budget becomes a step count from the trial's own batch size."""
        f = self.file
        if f.tokens > 0:
            steps = max(f.tokens // trial_preset.train.tokens_per_step, 1)
            return [f"train.iterations={steps}", "train.max_wallclock_seconds=0"]
        if f.steps > 0:
            return [f"train.iterations={f.steps}", "train.max_wallclock_seconds=0"]
        return [f"train.max_wallclock_seconds={f.budget_seconds}"]


def format_override(key: str, value: Any) -> str:
    """`key=value` with the value written as TOML (numbers, booleans, strings, lists)."""
    return f"{key}={json.dumps(value)}"


def _dimension(key: str, table: Any, where: str) -> Dimension:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table (low/high or choices), got {table!r}")
    unknown = set(table) - {"low", "high", "log", "choices", "type"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (valid: low, high, log, choices, type)")
    kind = table.get("type")
    if "choices" in table:
        choices = table["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: expected a non-empty list, got {choices!r}")
        if kind not in (None, "categorical"):
            raise ConfigError(f"{where}: choices make a categorical dimension, not type {kind!r}")
        return Dimension(key, "categorical", choices=choices)
    if "low" not in table or "high" not in table:
        raise ConfigError(f"{where}: give low and high, or choices")
    low, high = table["low"], table["high"]
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}.{name}: expected a number, got {type(v).__name__} {v!r}")
    if kind is None:
        kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}.type: {kind!r} is not valid (valid: float, int, categorical)")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{where}: type int needs integer bounds, got {low!r}..{high!r}")
    if not low < high:
        raise ConfigError(f"{where}: empty range: low {low!r} must be below high {high!r}")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low!r}")
    return Dimension(key, kind, int(low) if kind == "int" else float(low),
                     int(high) if kind == "int" else float(high), log)


def _candidates(greedy: dict, where: str) -> list[list[str]]:
    unknown = set(greedy) - {"candidates"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (valid: candidates)")
    cands = greedy.get("candidates", [])
    if not isinstance(cands, list) or not all(
            isinstance(c, list) and c and all(isinstance(o, str) for o in c) for c in cands):
        raise ConfigError(f"{where}.candidates: expected a list of override lists, e.g. "
                          '[["train.matrix_lr=0.05"], ["train.warmdown_fraction=0.6"]]')
    return cands


def load_sweep(path: str | Path, overrides: list[str] | None = None, preset: str | None = None) -> Sweep:
    """Read and check a sweep file. `overrides` are extra fixed `--set` overrides; `preset`
    replaces the file's base preset (the same search on another base)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        if preset:
            data["preset"] = preset
        f = from_dict(SweepFile, data)
        sweep = _check(f, list(overrides or []), path)
        sweep.extra_overrides, sweep.preset_override = list(overrides or []), preset or ""
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return sweep


def _check(f: SweepFile, overrides: list[str], path: Path) -> Sweep:
    if not f.preset:
        raise ConfigError("preset: name the base preset (a built-in name or a TOML path)")
    for name, value, valid in (("sampler", f.sampler, SAMPLERS), ("pruner", f.pruner, PRUNERS), ("mode", f.mode, MODES)):
        if value not in valid:
            raise ConfigError(f"{name} = {value!r} is not valid (valid: {', '.join(valid)})")
    if f.trials < 1 or not f.seeds:
        raise ConfigError("trials must be >= 1 and seeds a non-empty list")
    if sum(b > 0 for b in (f.budget_seconds, f.steps, f.tokens)) != 1:
        raise ConfigError("give exactly one trial budget: budget_seconds > 0, steps > 0 or tokens > 0")
    preset_path = Path(f.preset)
    name = str(path.parent / preset_path) if preset_path.suffix == ".toml" and not preset_path.is_absolute() \
        and (path.parent / preset_path).is_file() else f.preset
    base = load_preset(name, f.set + overrides)
    dims = [_dimension(key, table, f"space.{key!r}") for key, table in f.space.items()]
    cands = _candidates(f.greedy, "greedy")
    if f.mode == "optuna" and not dims:
        raise ConfigError("mode optuna needs a [space] with at least one key")
    if f.mode == "greedy" and not cands:
        raise ConfigError("mode greedy needs [greedy] candidates")
    # Every searched value must be one the preset accepts (unknown key, wrong type: one line here).
    for dim in dims:
        for value in dim.values_to_check():
            with_overrides(base, [format_override(dim.key, value)])
    for cand in cands:
        with_overrides(base, cand)
    if not all(math.isfinite(d.low) and math.isfinite(d.high) for d in dims if d.kind != "categorical"):
        raise ConfigError("space bounds must be finite numbers")
    return Sweep(f, dims, cands, base, str(path), name)
