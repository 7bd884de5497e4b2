"""Configuration: plain dataclasses, loaded from TOML presets with unknown keys rejected.

A preset is a TOML file with one table per stage (`[model]`, `[train]`, `[pack]`, `[eval]`).
Every key must name a dataclass field; a typo is an error that names the key and the closest
valid one, so a misspelt hyperparameter never silently falls back to its default.
Command-line overrides use dotted keys: `--set train.seq_len=512`.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pgolf.errors import ConfigError, did_you_mean


def choice(default: Any, values: tuple[str, ...] = (), registry: str = "") -> Any:
    """A string option (or list of strings) whose every value must be one of `values`, or a name of
    the `registry` kind (pgolf.components.MODULES): `from_dict` checks it, so every table — a preset's
    sections, an add-on's or an evaluation method's options — is checked the moment it is read."""
    meta = {"choices": tuple(values)} if values else {"registry": registry}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def valid_choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """The values a `choice` field accepts (None: not a choice field)."""
    if "choices" in f.metadata:
        return f.metadata["choices"]
    if "registry" in f.metadata:
        from pgolf.components import MODULES

        return tuple(sorted(MODULES[f.metadata["registry"]]))
    return None


def _check_choice(f: dataclasses.Field, value: Any, where: str) -> None:
    valid = valid_choices(f)
    if valid is None:
        return
    for v in value if isinstance(value, list) else [value]:
        if v not in valid:
            raise ConfigError(f"{where} = {v!r} is not valid{did_you_mean(str(v), list(valid))} "
                              f"(valid: {', '.join(valid)})")


# Values of the choice fields below (the modules that act on them import these).
COMPILE_MODES = ("auto", "on", "off")
MUON_COEFFICIENTS = ("quintic", "polar-express")  # the baseline's; Polar Express (#1787)
CALIBRATION_SOURCES = ("train", "self")
CALIBRATION_SAMPLINGS = ("stream", "random")
FLOAT_FORMATS = ("fp16", "fp32")
CLIP_SEARCHES = ("matrix", "row", "sdclip")
ACT_ORDERS = ("none", "descending", "ascending")  # #1019/#1207 descending; #700 ascending
LAYOUTS = ("packed", "bytes", "columns")  # integer layouts (pgolf.quant.layout)


@dataclass
class ModelConfig:
    """Shape of the GPT backbone. Defaults are the contest's naive baseline (17,059,912 params)."""

    vocab_size: int = 1024
    num_layers: int = 9
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: float = 2.0
    activation: str = choice("relu2", registry="activation")
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    rope_base: float = 10000.0
    logit_softcap: float = 30.0
    qk_gain_init: float = 1.5
    # Registered add-ons switched on for this model: name -> that add-on's config table
    # (pgolf.model.addons); `[model.addons.xsa] last = 4` in TOML.
    addons: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Optimisation and schedule. Defaults are the contest's naive baseline."""

    seed: int = 1337
    seq_len: int = 1024
    tokens_per_step: int = 524_288
    # Micro-batches per optimizer step summed over all ranks (the contest's 8 // world_size per
    # rank), so 1 rank and N ranks see the same global batch in the same order.
    grad_accum: int = 8
    # One row per micro-batch (all of a rank's tokens, documents packed back to back) instead of
    # rows of seq_len: the record's packing loader. Needs doc_isolation with max_segment (and kernel
    # flex or varlen beyond 8,192-token rows) so documents stay apart and none attends over
    # max_segment tokens.
    packed_rows: bool = False
    # A training context that grows on the wallclock schedule (#2014: 1024 -> 2048 -> 3072):
    # [[fraction, seq_len], ...] from fraction 0, ascending; each stage's seq_len is the row length
    # (or, with packed_rows, the longest piece a document is cut into). Empty: seq_len throughout.
    seq_len_schedule: list[list[float]] = field(default_factory=list)
    iterations: int = 20_000
    max_wallclock_seconds: float = 600.0
    # Steps run before the clock starts to trigger compilation; the initial state is then restored.
    warmup_steps: int = 20
    warmdown_iters: int = 1200
    # When > 0, the warmdown covers this fraction of the wallclock cap (of iterations without a cap)
    # instead of warmdown_iters.
    warmdown_fraction: float = 0.0
    min_lr: float = 0.0  # LR floor of the warmdown, as a multiplier (the frontier's 0.10)
    matrix_lr: float = 0.04
    scalar_lr: float = 0.04
    tied_embed_lr: float = 0.05
    embed_lr: float = 0.6
    head_lr: float = 0.008
    muon_momentum: float = 0.95
    muon_momentum_warmup_start: float = 0.85
    muon_momentum_warmup_steps: int = 500
    # > 0: the warm-up lasts this fraction of the wallclock cap instead (the same on any machine's
    # speed), or of iterations without a cap
    muon_momentum_warmup_fraction: float = 0.0
    muon_backend_steps: int = 5
    muon_row_normalize: bool = False  # MuonEq-R (#1285): each row of the update to unit norm before NS
    muon_coefficients: str = choice("quintic", MUON_COEFFICIENTS)
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.0
    val_every: int = 1000
    train_log_every: int = 200
    # Validation during training scores at most this many tokens (0 = the whole split).
    val_tokens_limit: int = 0
    checkpoint_every: int = 0  # steps between resume states (0 = off)
    checkpoint_minutes: float = 0.0  # or wallclock minutes between them (rank 0's clock; 0 = off)
    compile: str = choice("auto", COMPILE_MODES)
    # Decoupled weight decay: Muon W <- W(1 - lr_t wd) (11L lineage 0.04); AdamW when > 0.
    muon_weight_decay: float = 0.0
    adam_weight_decay: float = 0.0
    embed_weight_decay: float = -1.0  # >= 0: the embedding group's own AdamW decay (-1: adam_weight_decay)
    # Weight averaging applied to the final weights: none | ema | swa (pgolf.train.averaging).
    averaging: str = choice("none", registry="weight averaging")
    ema_decay: float = 0.997
    swa_every: int = 50
    swa_start_lr_scale: float = 0.5
    # Late QAT (STE fake-quant of the block matrices) once the LR multiplier < qat_start_lr_scale;
    # qat_bits = 0 turns it off. CROWN-Q adds its penalty while QAT is on (lambda 0 = off).
    qat_bits: int = 0
    qat_start_lr_scale: float = 0.15
    crown_q_lambda: float = 0.0
    crown_q_qmax: int = 15
    # GPTQ calibration on training data inside the cap (the contest's rule): training stops
    # `gptq_reserve_seconds` early, then Hessians of `gptq_calibration_sequences` training
    # sequences are collected with the clock running. 0 sequences = no in-training calibration.
    gptq_calibration_sequences: int = 0
    gptq_reserve_seconds: float = 0.0
    # Where the calibration sequences come from: "train" (the training stream, #700/#1150
    # lineage) or "self" (sequences the model samples itself, #1019/#1207); both on the clock.
    gptq_calibration_source: str = choice("train", CALIBRATION_SOURCES)
    gptq_calibration_seq_len: int = 0  # 0 = train.seq_len
    # How training sequences are drawn: "stream" (the stream's first windows) or "random"
    # (windows at random offsets over every train shard, without repeats, seeded by train.seed:
    # #1855's shuffled calibration loader).
    gptq_calibration_sampling: str = choice("stream", CALIBRATION_SAMPLINGS)
    # On CUDA, keep the tied embedding (and so its Adam moments) and Muon's momentum in bf16, as
    # #1855 does; fp32 stays the CPU path (bf16 there is slower and gains nothing).
    bf16_state: bool = False


# How the counted code ships (pgolf.artifact.export); checked in pgolf.quant.check, offered by `pgolf export`.
CODE_WRAPPERS = ("plain", "minified", "minified-lzma", "minified-brotli")


@dataclass
class PackConfig:
    """The system's own export: how its weights become the counted bytes (pgolf.artifact.pack)."""

    # Registered quantizer; its name carries the bits of the block matrices (rtn-int6, gptq-int5).
    quant: str = choice("int8-rtn", registry="quantizer")
    # Bits per group besides the matrices: the token embedding (also the output head), and the
    # float formats of small tensors (<= 65,536 elements) and of control tensors (scales, gates).
    embedding_bits: int = 8
    small_float: str = choice("fp16", FLOAT_FORMATS)
    control_float: str = choice("fp32", FLOAT_FORMATS)
    # gptq-lite / gptq scales: one clip quantile per matrix or per row, or "sdclip": the step is
    # k·std(row)/qmax (#1394), with k per group from sdclip_k
    clip_search: str = choice("matrix", CLIP_SEARCHES)
    sdclip_k: dict = field(default_factory=dict)  # attention / mlp / embedding / other -> k (default 12.85)
    gptq_embedding: bool = False  # GPTQ on the tied embedding with the output head's Hessian (#1394)
    gptq_act_order: str = choice("descending", ACT_ORDERS)
    gptq_block_size: int = 128
    gptq_damping: float = 0.01
    # Zero this fraction of the smallest |w| of every quantized matrix before quantizing (#700: 0.03).
    magnitude_prune: float = 0.0
    # Gate weights an add-on declares (`GATE_PARAMETERS`) per row at this many bits; 0 keeps them in
    # the small-tensor float (#1736's int8 gate quantization: gate_bits = 8).
    gate_bits: int = 0
    # LQER (#1797): a rank-`lqer_rank` 2/4-bit correction of the `lqer_top` matrices with the largest
    # quantization error, B's scales per `lqer_group` elements; rank 0 = off.
    lqer_rank: int = 0
    lqer_top: int = 3
    lqer_group: int = 64
    # AWQ-lite (#1908): the `awq_top` groups of `awq_group` input columns of largest activation-weighted
    # saliency, over every matrix GPTQ solves, at `awq_bits` inside the same solve; 0 = off.
    awq_top: int = 0
    awq_group: int = 64
    awq_bits: int = 8
    compressor: str = choice("zlib", registry="compressor")
    # When non-empty, pack tries each of these and keeps the smallest artifact.
    compressors: list[str] = choice([], registry="compressor")
    # Integer layouts pack tries with every compressor (pgolf.quant.layout); the smallest wins.
    layouts: list[str] = choice(list(LAYOUTS), LAYOUTS)
    # How the counted train_gpt.py is shipped: one of CODE_WRAPPERS (the last two self-extracting).
    code_wrapper: str = choice("plain", CODE_WRAPPERS)
    budget_bytes: int = 16_000_000


@dataclass
class EvalConfig:
    seq_len: int = 1024
    batch_tokens: int = 524_288


@dataclass
class Preset:
    name: str = "custom"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Evaluation methods and their options: `methods = [...]` plus one `[evaluation.<section>]`
    # table per method; checked against the methods' own option dataclasses when the preset loads.
    evaluation: dict = field(default_factory=dict)
    # What the system's authors reported (params, bpb, source), for `pgolf info` comparisons.
    reference: dict = field(default_factory=dict)

    @property
    def eval_methods(self) -> list[str]:
        """The methods `[evaluation] methods` names (`standard` when none)."""
        return list(self.evaluation.get("methods") or ["standard"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Return `value` converted to `tp` when that is lossless, else raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check_value(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {tp}, got {type(value).__name__} {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_value(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__} {value!r}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, where)
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from `data`, rejecting unknown keys, wrong types and values a `choice`
    field does not accept."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in hints:
            raise ConfigError(f"unknown key {path!r}{did_you_mean(key, names)} (valid: {', '.join(names)})")
        kwargs[key] = _check_value(value, hints[key], path)
        _check_choice(fields[key], kwargs[key], path)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `section.key=value`; the value is read as TOML (so 3, 0.5, true, "x" all work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k!r} is not a table")
        node[keys[-1]] = value
    return data


def preset_names() -> list[str]:
    """Built-in presets (names starting with "_" are shared parents, not presets of their own)."""
    folder = resources.files("pgolf") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir()
                  if p.name.endswith(".toml") and not p.name.startswith("_"))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_tree(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """A preset's TOML with its `extends` parents merged in (later parents and the child win)."""
    if name_or_path in seen:
        raise ConfigError(f"preset {name_or_path!r} extends itself ({' -> '.join(seen)})")
    text, origin = _read_preset_text(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None
    parents = data.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    merged: dict[str, Any] = {}
    for parent in parents:
        if not isinstance(parent, str):
            raise ConfigError(f"{origin}: extends must name presets, got {parent!r}")
        inherited = _load_tree(parent, seen + (name_or_path,))[0]
        inherited.pop("reference", None)  # a parent's published figures are not the child's
        merged = deep_merge(merged, inherited)
    return deep_merge(merged, data), origin


def _read_preset_text(name_or_path: str) -> tuple[str, str]:
    """A built-in name wins over a directory of the same name in the working directory (a run
    directory written with `--out cpu-mini` must not shadow the `cpu-mini` preset)."""
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    res = resources.files("pgolf") / "presets" / f"{name_or_path}.toml"
    if res.is_file():
        return res.read_text(encoding="utf-8"), f"preset {name_or_path}"
    looks_like_path = path.suffix == ".toml" or len(path.parts) > 1
    if looks_like_path or path.exists():
        what = "a directory, not a TOML file" if path.is_dir() else "not found"
        raise ConfigError(f"preset {name_or_path!r}: {path.resolve()} is {what}, and no built-in preset "
                          f"has that name (built-in: {', '.join(preset_names())})")
    hint = did_you_mean(name_or_path, preset_names())
    raise ConfigError(f"unknown preset {name_or_path!r}{hint} (no file of that name here; built-in: "
                      f"{', '.join(preset_names())})")


def preset_origin(name_or_path: str) -> str:
    """How errors name a preset: its file's path, or `preset NAME` for a built-in one."""
    return str(name_or_path) if Path(name_or_path).is_file() else f"preset {name_or_path}"


def read_preset(name_or_path: str, overrides: list[str] | None = None) -> Preset:
    """A built-in preset by name, or a TOML file by path, with dotted overrides applied; checked
    for structure only (unknown keys, types). `pgolf.job.preset.load_preset` adds the checks
    that need the registries (quantizers, compressors, eval methods)."""
    data, origin = _load_tree(name_or_path)
    data["name"] = Path(name_or_path).stem
    apply_overrides(data, overrides or [])
    try:
        return from_dict(Preset, data)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def preset_from_dict(data: dict[str, Any]) -> Preset:
    """A preset recorded in a run or an artifact. `compression` was a declared-only table before
    `[pack]` held the export; artifacts written then still carry it, and it is dropped."""
    data = {k: v for k, v in data.items() if k != "compression"}
    return from_dict(Preset, data)


def override(preset: Preset, overrides: list[str]) -> Preset:
    """A copy of `preset` with dotted overrides applied, checked for structure only (see `read_preset`)."""
    return preset_from_dict(apply_overrides(preset.to_dict(), overrides))
