"""record-549-mini: exported by pgolf 0.1.0. Train under torchrun, pack, score the round-tripped artifact.

    torchrun --standalone --nproc_per_node=8 train_gpt.py --data DIR --tokenizer M
"""
from __future__ import annotations

import json
from pathlib import Path
# ---------------------------------------------------------------------------- pgolf/errors.py
"""pgolf's own error types.

Every failure a user can cause (bad files, bad presets, bad flags) raises a subclass of
`PgolfError` whose message is one self-contained line; the CLI prints it and exits non-zero
instead of showing a traceback.
"""


class PgolfError(Exception):
    """Base class: a user-facing, one-line error."""


class ShardError(PgolfError):
    """A token shard is malformed (magic, version, size, truncation)."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class ConfigError(PgolfError):
    """A preset or override is invalid (unknown key, wrong type)."""


class DataError(PgolfError):
    """Input data is missing, empty or inconsistent with the model/tokenizer."""


class TokenizerError(PgolfError):
    """A tokenizer could not be loaded or trained."""


class ArtifactError(PgolfError):
    """An artifact file is malformed, truncated, tampered with or of an unknown version."""


class BudgetError(PgolfError):
    """An artifact does not fit its byte budget."""

# ---------------------------------------------------------------------------- pgolf/registry.py
"""A tiny name -> object registry, so techniques register themselves and callers look them up by name."""


import difflib
from typing import Callable, Generic, Iterator, TypeVar


T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{hint}; known: {', '.join(sorted(self._entries))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

# ---------------------------------------------------------------------------- pgolf/quant/compress.py
"""Byte compressors, registered by name. zlib-9 is the baseline's; lzma, zstd and brotli are the
later records' choices (techniques.md §5.8)."""


import importlib
import importlib.util
import lzma
import zlib
from dataclasses import dataclass
from typing import Callable



@dataclass(frozen=True)
class Compressor:
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


COMPRESSORS: Registry[Compressor] = Registry("compressor")

COMPRESSORS.register("zlib")(Compressor(lambda b: zlib.compress(b, 9), zlib.decompress))
COMPRESSORS.register("lzma")(Compressor(
    lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME), lzma.decompress))


def _optional(module: str, package: str):
    """Import a compressor's library when it is first used, so a missing one only matters then."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"compressor {module!r} needs the {package!r} package (pip install {package}); "
                          "or choose zlib or lzma") from None


def available(name: str) -> bool:
    module = {"zstd": "zstandard", "brotli": "brotli"}.get(name)
    return module is None or importlib.util.find_spec(module) is not None


COMPRESSORS.register("zstd")(Compressor(
    lambda b: _optional("zstandard", "zstandard").ZstdCompressor(level=22).compress(b),
    lambda b: _optional("zstandard", "zstandard").ZstdDecompressor().decompress(b)))
COMPRESSORS.register("brotli")(Compressor(
    lambda b: _optional("brotli", "brotli").compress(b, quality=11),
    lambda b: _optional("brotli", "brotli").decompress(b)))

# ---------------------------------------------------------------------------- pgolf/quant/encoding.py
"""How a quantized tensor is stored: named numpy parts plus an encoding name that says how to
rebuild the float tensor. Decoding depends only on the encoding, never on the quantizer that
produced it, so any artifact can be loaded by any pgolf that knows its encodings.
"""


from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch



@dataclass
class EncodedTensor:
    name: str
    shape: tuple[int, ...]
    encoding: str
    parts: dict[str, np.ndarray]
    dtype: str = "float32"  # dtype of the restored tensor

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.parts.values())


DECODERS: Registry[Callable[[EncodedTensor], torch.Tensor]] = Registry("tensor encoding")


@DECODERS.register("raw")
def _decode_raw(t: EncodedTensor) -> torch.Tensor:
    return torch.from_numpy(np.array(t.parts["data"])).reshape(t.shape)


@DECODERS.register("float")
def _decode_float(t: EncodedTensor) -> torch.Tensor:
    return torch.from_numpy(np.array(t.parts["data"])).float().reshape(t.shape)


@DECODERS.register("int_per_row")
def _decode_per_row(t: EncodedTensor) -> torch.Tensor:
    q = torch.from_numpy(np.array(t.parts["q"])).float()
    scale = torch.from_numpy(np.array(t.parts["scale"])).float()
    return (q * scale[:, None]).reshape(t.shape)


@DECODERS.register("int_per_tensor")
def _decode_per_tensor(t: EncodedTensor) -> torch.Tensor:
    q = torch.from_numpy(np.array(t.parts["q"])).float()
    scale = float(np.array(t.parts["scale"]).reshape(-1)[0])
    return (q * scale).reshape(t.shape)


@DECODERS.register("int_per_row_packed")
def _decode_per_row_packed(t: EncodedTensor) -> torch.Tensor:
    pass

    bits = int(np.array(t.parts["bits"]).reshape(-1)[0])
    scale = torch.from_numpy(np.array(t.parts["scale"])).float()
    count = int(np.prod(t.shape))
    q = torch.from_numpy(unpack_signed(t.parts["q"], bits, count).astype(np.float32))
    return (q.view(scale.numel(), -1) * scale[:, None]).reshape(t.shape)


def decode(t: EncodedTensor) -> torch.Tensor:
    out = DECODERS.get(t.encoding)(t)
    return out.to(getattr(torch, t.dtype))


def decode_state_dict(tensors: list[EncodedTensor]) -> dict[str, torch.Tensor]:
    return {t.name: decode(t) for t in tensors}

# ---------------------------------------------------------------------------- pgolf/artifact/format.py
"""The pgolf artifact: a versioned, checksummed, pickle-free container for a quantized model.

Layout (all integers little-endian):

    offset  size  field
    0       8     magic  b"PGOLFART"
    8       2     format version (uint16), currently 1
    10      1     n = length of the compressor name
    11      n     compressor name (ASCII: zlib, lzma, zstd, brotli)
    11+n    32    sha256 of the compressed body
    43+n    ...   compressed body

    body = uint32 header length H | header JSON (H bytes, UTF-8) | tensor payload

The header holds the preset, the quantizer, free-form metadata (calibration provenance, ...) and
a tensor index: name, shape, encoding, restored dtype and, for each part, its dtype, shape,
offset and length in the payload. Loading parses JSON and copies bytes into numpy arrays;
nothing is ever executed. The header sits inside the compressed body because its bytes count
against the budget too.
"""


import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


ARTIFACT_MAGIC = b"PGOLFART"
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {"int8", "uint8", "int16", "uint16", "int32", "int64", "float16", "float32", "float64", "bool"}
MAX_HEADER_BYTES = 64 << 20


@dataclass
class Artifact:
    preset: dict
    quant: str
    tensors: list[EncodedTensor]
    compressor: str = "zlib"
    meta: dict = field(default_factory=dict)


def _body(artifact: Artifact) -> bytes:
    index, chunks, offset = [], [], 0
    for t in artifact.tensors:
        parts = []
        for key, arr in t.parts.items():
            arr = np.ascontiguousarray(arr)
            if arr.dtype.name not in _ALLOWED_DTYPES:
                raise ArtifactError(f"tensor {t.name}: part {key} has unsupported dtype {arr.dtype}")
            data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            parts.append({"key": key, "dtype": arr.dtype.name, "shape": list(arr.shape),
                          "offset": offset, "nbytes": len(data)})
            chunks.append(data)
            offset += len(data)
        index.append({"name": t.name, "shape": list(t.shape), "encoding": t.encoding,
                      "dtype": t.dtype, "parts": parts})
    header = json.dumps({"preset": artifact.preset, "quant": artifact.quant, "meta": artifact.meta,
                         "tensors": index, "payload_bytes": offset},
                        sort_keys=True, separators=(",", ":")).encode("utf-8")
    return struct.pack("<I", len(header)) + header + b"".join(chunks)


def encode_artifact(artifact: Artifact) -> bytes:
    name = artifact.compressor.encode("ascii")
    compressed = COMPRESSORS.get(artifact.compressor).compress(_body(artifact))
    return (ARTIFACT_MAGIC + struct.pack("<HB", FORMAT_VERSION, len(name)) + name
            + hashlib.sha256(compressed).digest() + compressed)


def decode_artifact(data: bytes, origin: str = "artifact") -> Artifact:
    if len(data) < len(ARTIFACT_MAGIC) + 3:
        raise ArtifactError(f"{origin}: truncated ({len(data)} bytes); not a complete pgolf artifact")
    if data[:8] != ARTIFACT_MAGIC:
        raise ArtifactError(f"{origin}: bad magic {data[:8]!r}; not a pgolf artifact")
    version, name_len = struct.unpack_from("<HB", data, 8)
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{origin}: artifact format version {version}, this pgolf reads {FORMAT_VERSION}")
    pos = 11 + name_len
    if len(data) < pos + 32:
        raise ArtifactError(f"{origin}: truncated header")
    compressor = data[11:pos].decode("ascii", errors="replace")
    digest, compressed = data[pos : pos + 32], data[pos + 32 :]
    if hashlib.sha256(compressed).digest() != digest:
        raise ArtifactError(f"{origin}: checksum mismatch; the file is truncated or corrupted")
    try:
        codec = COMPRESSORS.get(compressor)
    except Exception:
        raise ArtifactError(f"{origin}: unknown compressor {compressor!r}") from None
    try:
        body = codec.decompress(compressed)
    except Exception as exc:
        raise ArtifactError(f"{origin}: cannot decompress payload ({type(exc).__name__})") from None
    return _parse_body(body, compressor, origin)


def _parse_body(body: bytes, compressor: str, origin: str) -> Artifact:
    try:
        (hlen,) = struct.unpack_from("<I", body, 0)
        if hlen > min(len(body) - 4, MAX_HEADER_BYTES):
            raise ValueError("header length beyond body")
        header = json.loads(body[4 : 4 + hlen].decode("utf-8"))
        payload = memoryview(body)[4 + hlen :]
        if len(payload) != header["payload_bytes"]:
            raise ValueError("payload size mismatch")
        tensors = []
        for entry in header["tensors"]:
            parts = {}
            for part in entry["parts"]:
                if part["dtype"] not in _ALLOWED_DTYPES:
                    raise ValueError(f"dtype {part['dtype']!r} not allowed")
                off, n = int(part["offset"]), int(part["nbytes"])
                if off < 0 or n < 0 or off + n > len(payload):
                    raise ValueError("part outside payload")
                dt = np.dtype(part["dtype"]).newbyteorder("<")
                arr = np.frombuffer(payload[off : off + n], dtype=dt).reshape(part["shape"])
                parts[str(part["key"])] = arr
            tensors.append(EncodedTensor(str(entry["name"]), tuple(int(s) for s in entry["shape"]),
                                         str(entry["encoding"]), parts, str(entry["dtype"])))
        return Artifact(preset=header["preset"], quant=header["quant"], tensors=tensors,
                        compressor=compressor, meta=header.get("meta", {}))
    except (KeyError, TypeError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{origin}: malformed artifact body ({exc})") from None


def read_artifact(path: str | Path) -> Artifact:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: artifact not found")
    return decode_artifact(path.read_bytes(), str(path))

# ---------------------------------------------------------------------------- pgolf/config.py
"""Configuration: plain dataclasses, loaded from TOML presets with unknown keys rejected.

A preset is a TOML file with one table per stage (`[model]`, `[train]`, `[pack]`, `[eval]`).
Every key must name a dataclass field; a typo is an error that names the key and the closest
valid one, so a misspelt hyperparameter never silently falls back to its default.
Command-line overrides use dotted keys: `--set train.seq_len=512`.
"""


import dataclasses
import difflib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any



@dataclass
class ModelConfig:
    """Shape of the GPT backbone. Defaults are the contest's naive baseline (17,059,912 params)."""

    vocab_size: int = 1024
    num_layers: int = 9
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: float = 2.0
    activation: str = "relu2"
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
    iterations: int = 20_000
    max_wallclock_seconds: float = 600.0
    # Steps run before the clock starts to trigger compilation; the initial state is then restored.
    warmup_steps: int = 20
    warmdown_iters: int = 1200
    # When > 0, the warmdown covers this fraction of the wallclock cap instead of warmdown_iters.
    warmdown_fraction: float = 0.0
    matrix_lr: float = 0.04
    scalar_lr: float = 0.04
    tied_embed_lr: float = 0.05
    embed_lr: float = 0.6
    head_lr: float = 0.008
    muon_momentum: float = 0.95
    muon_momentum_warmup_start: float = 0.85
    muon_momentum_warmup_steps: int = 500
    muon_backend_steps: int = 5
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.0
    val_every: int = 1000
    train_log_every: int = 200
    # Validation during training scores at most this many tokens (0 = the whole split).
    val_tokens_limit: int = 0
    checkpoint_every: int = 0
    compile: str = "auto"  # auto | on | off
    # Decoupled weight decay: Muon W <- W(1 - lr_t wd) (11L lineage 0.04); AdamW when > 0.
    muon_weight_decay: float = 0.0
    adam_weight_decay: float = 0.0
    # Weight averaging applied to the final weights: none | ema | swa (pgolf.train.averaging).
    averaging: str = "none"
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


@dataclass
class PackConfig:
    quant: str = "int8-rtn"
    compressor: str = "zlib"
    # When non-empty, pack tries each of these and keeps the smallest artifact.
    compressors: list[str] = field(default_factory=list)
    budget_bytes: int = 16_000_000
    embedding_bits: int = 8
    clip_search: str = "matrix"  # gptq-lite: one clip quantile per matrix or per row
    gptq_act_order: str = "descending"  # none | descending (#1019/#1207) | ascending (#700)


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
    # Declared now, read by the compression and evaluation-method stages as they land: a seed's
    # own settings (GPTQ, int5/int6 groups, QAT, TTT, SLOT, Hedge, ...).
    compression: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    # What the system's authors reported (params, bpb, source), for `pgolf info` comparisons.
    reference: dict = field(default_factory=dict)

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
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in hints:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key {path!r}{hint} (valid: {', '.join(names)})")
        kwargs[key] = _check_value(value, hints[key], path)
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
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: preset file not found")
        return path.read_text(encoding="utf-8"), str(path)
    res = resources.files("pgolf") / "presets" / f"{name_or_path}.toml"
    if not res.is_file():
        close = difflib.get_close_matches(name_or_path, preset_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown preset {name_or_path!r}{hint} (known: {', '.join(preset_names())})"
        )
    return res.read_text(encoding="utf-8"), f"preset {name_or_path}"


def load_preset(name_or_path: str, overrides: list[str] | None = None) -> Preset:
    """Load a built-in preset by name, or a TOML file by path, then apply dotted overrides."""
    data, origin = _load_tree(name_or_path)
    data["name"] = Path(name_or_path).stem
    apply_overrides(data, overrides or [])
    try:
        return from_dict(Preset, data)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def preset_from_dict(data: dict[str, Any]) -> Preset:
    return from_dict(Preset, data)


def with_overrides(preset: Preset, overrides: list[str]) -> Preset:
    """A copy of `preset` with dotted overrides applied (checked like a loaded preset)."""
    return preset_from_dict(apply_overrides(preset.to_dict(), overrides))

# ---------------------------------------------------------------------------- pgolf/model/addons/base.py
"""The add-on protocol: how a technique plugs into the backbone without the backbone naming it.

An add-on is an `nn.Module` registered under a name with a config dataclass; a preset switches it
on with a table `[model.addons.NAME]`. The backbone calls these hooks at fixed points, in the
add-ons' `ORDER` (then name) order; a hook an add-on does not override is never called:

    embed(x, ctx)                    token embedding, before the first RMSNorm (BigramHash)
    post_embed(x, ctx)               after the first RMSNorm; the result is x0 (SmearGate)
    norm_scale(layer) -> float       factor on both pre-norm outputs of a block (LN scale)
    make_rotary(head_dim, base)      replaces the full-dimension RoPE (partial RoPE)
    values(v, layer, ctx)            value projection output (B, T, Hkv·D) (VE, VRL)
    attn_output(y, v, layer, ctx)    attention output per head (B, H, T, D) before `proj` (XSA)
    before_block(x, layer, ctx)      residual stream entering a block (U-Net decoder skips)
    after_block(x_in, x, layer, ctx) residual stream leaving a block (DTG, U-Net encoder side)
    init_weights(model)              after the whole model is built (orthogonal init)
    optim_group(param_name)          "embed" | "scalar" | "matrix" for the add-on's own parameters

`applies_to(layer)` limits the per-layer hooks to chosen layers (e.g. XSA on the last 4).
"""


from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn



@dataclass
class ForwardContext:
    """Per-forward scratch shared by the hooks of one forward pass."""

    ids: torch.Tensor
    num_layers: int
    x0: torch.Tensor | None = None
    raw_values: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> W_v h, before hooks
    stash: dict[str, Any] = field(default_factory=dict)


class AddOn(nn.Module):
    ORDER: ClassVar[int] = 50
    Config: ClassVar[type] = object

    HOOKS: ClassVar[tuple[str, ...]] = (
        "embed", "post_embed", "norm_scale", "make_rotary", "values", "attn_output",
        "before_block", "after_block", "init_weights",
    )

    def __init__(self, cfg: Any, model_cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.model_cfg = model_cfg

    def applies_to(self, layer: int) -> bool:
        return True

    def implements(self, hook: str) -> bool:
        return getattr(type(self), hook) is not getattr(AddOn, hook)

    def optim_group(self, param_name: str) -> str:
        return "scalar"

    # Hooks: identity defaults, never called unless overridden (see `implements`).
    def embed(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x

    def post_embed(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x

    def norm_scale(self, layer: int) -> float:
        return 1.0

    def make_rotary(self, head_dim: int, base: float) -> nn.Module | None:
        return None

    def values(self, v: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return v

    def attn_output(self, y: torch.Tensor, v: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return y

    def before_block(self, x: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return x

    def after_block(self, x_in: torch.Tensor, x: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return x

    def init_weights(self, model: nn.Module) -> None:
        return None


ADDONS: Registry[type[AddOn]] = Registry("model add-on")


def select_layers(num_layers: int, layers: list[int], last: int) -> set[int]:
    """Layers an add-on acts on: explicit `layers` (negative counts from the end), else the last
    `last` layers (`last = 0` or ≥ num_layers: all layers)."""
    if layers:
        out = {l % num_layers for l in layers}
        if any(not -num_layers <= l < num_layers for l in layers):
            pass

            raise ConfigError(f"layer indices {layers} out of range for {num_layers} layers")
        return out
    if last <= 0 or last >= num_layers:
        return set(range(num_layers))
    return set(range(num_layers - last, num_layers))

# ---------------------------------------------------------------------------- pgolf/model/addons/__init__.py
"""Architecture add-ons, one module each, registered by name (see base.py for the hooks)."""


import importlib
import pkgutil

from torch import nn


__all__ = ["ADDONS", "AddOn", "ForwardContext", "build_addons", "select_layers", "load_all"]


def load_all() -> None:
    """Import every add-on module so each registers itself."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def build_addons(cfg: ModelConfig) -> nn.ModuleDict:
    load_all()
    built = []
    for name, table in cfg.addons.items():
        cls = ADDONS.get(name)
        addon_cfg = from_dict(cls.Config, table or {}, f"model.addons.{name}")
        built.append(cls(addon_cfg, cfg))
    built.sort(key=lambda a: (a.ORDER, type(a).__name__))
    return nn.ModuleDict({_name_of(a): a for a in built})


def _name_of(addon: AddOn) -> str:
    return next(n for n in ADDONS if ADDONS.get(n) is type(addon))

# ---------------------------------------------------------------------------- pgolf/model/activations.py
"""MLP activations, registered by name (`[model] activation = "..."`)."""


from typing import Callable

import torch
import torch.nn.functional as F


ACTIVATIONS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("activation")


@ACTIVATIONS.register("relu2")
def relu_squared(x: torch.Tensor) -> torch.Tensor:
    """relu(x)^2, the naive baseline's MLP nonlinearity."""
    return torch.relu(x).square()


@ACTIVATIONS.register("leaky_relu2")
def leaky_relu_squared(x: torch.Tensor) -> torch.Tensor:
    """leaky_relu(x, 0.5)^2 (PR #493/#549): negative inputs keep a gradient (0.25·x² after squaring)."""
    return F.leaky_relu(x, negative_slope=0.5).square()

# ---------------------------------------------------------------------------- pgolf/model/blocks.py
"""Transformer pieces of the backbone: rotary embedding, GQA attention, MLP, block.

All RMSNorms are parameter-free (`F.rms_norm`). Output projections are zero-initialised (flagged
with `zero_init`) so each block starts as the identity on the residual stream. Add-ons act only
through the hooks listed in `pgolf.model.addons.base`; nothing here names a technique.
"""


import torch
import torch.nn.functional as F
from torch import nn



def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Linear(nn.Linear):
    """nn.Linear without bias; keeps fp32 weights, autocast picks the compute dtype.

    `weight_transform` (None by default) maps the weight before use — how training-side
    techniques such as fake quantization act without the model naming them. It is an instance
    attribute, so torch.compile guards on it and recompiles when it changes.
    """

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init
        self.weight_transform = None
        if zero_init:
            nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.weight_transform is None else self.weight_transform(self.weight)
        return F.linear(x, w)


class Rotary(nn.Module):
    """RoPE on the first `dims` dims of each head (all by default), pairing (i, i + dims/2).

    `ntk_train_seq_len > 0` applies the #315-lineage NTK base scaling for sequences longer than
    it: base' = base · (T / ntk_train_seq_len)^(dims / (dims − 2)).
    """

    def __init__(self, head_dim: int, base: float, dims: int = 0, ntk_train_seq_len: int = 0) -> None:
        super().__init__()
        self.dims = dims or head_dim
        if self.dims % 2 or self.dims > head_dim:
            raise ValueError(f"rotary dims {self.dims} must be even and <= head dim {head_dim}")
        self.base, self.ntk_train_seq_len = base, ntk_train_seq_len

    def _cos_sin(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Recomputed every call (T×dims/2 numbers, fused away under compile): a Python-side cache
        # mutated inside forward would make torch.compile guard on it and recompile.
        base = self.base
        if self.ntk_train_seq_len and seq_len > self.ntk_train_seq_len:
            base = base * (seq_len / self.ntk_train_seq_len) ** (self.dims / (self.dims - 2))
        inv_freq = 1.0 / (base ** (torch.arange(0, self.dims, 2, dtype=torch.float32, device=device) / self.dims))
        freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
        return freqs.cos()[None, None], freqs.sin()[None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos, sin = self._cos_sin(x.size(-2), x.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        half = self.dims // 2
        x1, x2 = x[..., :half], x[..., half : self.dims]
        rotated = (x1 * cos + x2 * sin, x2 * cos - x1 * sin)
        if self.dims == x.size(-1):
            return torch.cat(rotated, dim=-1)
        return torch.cat((*rotated, x[..., self.dims :]), dim=-1)


class CausalSelfAttention(nn.Module):
    """GQA attention with RMS-normalised q/k, RoPE and a learned per-head q gain."""

    def __init__(self, cfg: ModelConfig, layer: int, addons: list) -> None:
        super().__init__()
        d, h, hkv = cfg.model_dim, cfg.num_heads, cfg.num_kv_heads
        if d % h or h % hkv:
            raise ValueError(f"model_dim {d} / num_heads {h} / num_kv_heads {hkv} do not divide")
        self.layer = layer
        self.num_heads, self.num_kv_heads, self.head_dim = h, hkv, d // h
        if self.head_dim % 2:
            raise ValueError(f"head dim {self.head_dim} must be even for RoPE")
        self.c_q = Linear(d, d)
        self.c_k = Linear(d, hkv * self.head_dim)
        self.c_v = Linear(d, hkv * self.head_dim)
        self.proj = Linear(d, d, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((h,), float(cfg.qk_gain_init)))
        custom = [r for a in addons if a.implements("make_rotary")
                  for r in [a.make_rotary(self.head_dim, cfg.rope_base)] if r is not None]
        self.rotary = custom[0] if custom else Rotary(self.head_dim, cfg.rope_base)
        self._value_hooks = [a for a in addons if a.implements("values") and a.applies_to(layer)]
        self._output_hooks = [a for a in addons if a.implements("attn_output") and a.applies_to(layer)]

    def forward(self, x: torch.Tensor, ctx) -> torch.Tensor:
        bsz, seq, dim = x.shape
        q = self.c_q(x).view(bsz, seq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.c_k(x).view(bsz, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.c_v(x)
        ctx.raw_values[self.layer] = v
        for hook in self._value_hooks:
            v = hook.values(v, self.layer, ctx)
        v = v.view(bsz, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = self.rotary(rms_norm(q)), self.rotary(rms_norm(k))
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads
        )
        for hook in self._output_hooks:
            y = hook.attn_output(y, v, self.layer, ctx)
        return self.proj(y.transpose(1, 2).reshape(bsz, seq, dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hidden = int(round(cfg.mlp_mult * cfg.model_dim))
        self.fc = Linear(cfg.model_dim, hidden)
        self.proj = Linear(hidden, cfg.model_dim, zero_init=True)
        self.activation = ACTIVATIONS.get(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.activation(self.fc(x)))


class Block(nn.Module):
    """h = m0·x + m1·x0;  h += a·Attn(s·rms(h));  h += b·MLP(s·rms(h))  (per-channel m, a, b;
    s = product of the add-ons' norm scales for this layer, 1 by default)."""

    def __init__(self, cfg: ModelConfig, layer: int, addons: list) -> None:
        super().__init__()
        d = cfg.model_dim
        self.layer = layer
        self.attn = CausalSelfAttention(cfg, layer, addons)
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d))))
        scale = 1.0
        for a in addons:
            if a.implements("norm_scale") and a.applies_to(layer):
                scale *= a.norm_scale(layer)
        self.norm_scale = scale

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x) if self.norm_scale == 1.0 else rms_norm(x) * self.norm_scale

    def forward(self, x: torch.Tensor, x0: torch.Tensor, ctx) -> torch.Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(self._norm(x), ctx)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(self._norm(x))

# ---------------------------------------------------------------------------- pgolf/model/gpt.py
"""The GPT backbone (techniques.md §2.1), with add-on hooks at fixed points.

    x = E[ids] (+ embed hooks); x = rms(x) (+ post-embed hooks); x0 = x
    for each block: before_block hooks; x = Block(x, x0); after_block hooks
    logits = softcap · tanh(rms(x) Eᵀ / softcap)

The naive baseline is this backbone with the `unet_skips` add-on (17,059,912 parameters with the
default ModelConfig, the contest script's count).
"""


import torch
import torch.nn.functional as F
from torch import nn


# Parameters matching these names are "control" tensors: optimised by Adam at the scalar LR and
# kept in fp32 / fp16 by the exporters, whatever their rank (the contest's CONTROL patterns).
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight")


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.addons = build_addons(cfg)
        addons = list(self.addons.values())
        self.blocks = nn.ModuleList(Block(cfg, i, addons) for i in range(cfg.num_layers))
        self.lm_head = None if cfg.tie_embeddings else Linear(cfg.model_dim, cfg.vocab_size, zero_init=True)
        self._embed_hooks = [a for a in addons if a.implements("embed")]
        self._post_embed_hooks = [a for a in addons if a.implements("post_embed")]
        self._before = [[a for a in addons if a.implements("before_block") and a.applies_to(i)]
                        for i in range(cfg.num_layers)]
        self._after = [[a for a in addons if a.implements("after_block") and a.applies_to(i)]
                       for i in range(cfg.num_layers)]
        if cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=cfg.tied_embed_init_std)
        for a in addons:
            if a.implements("init_weights"):
                a.init_weights(self)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states (B, T, d), before the output projection."""
        ctx = ForwardContext(ids=ids, num_layers=self.cfg.num_layers)
        x = self.tok_emb(ids)
        for a in self._embed_hooks:
            x = a.embed(x, ctx)
        x = rms_norm(x)
        for a in self._post_embed_hooks:
            x = a.post_embed(x, ctx)
        ctx.x0 = x
        for i, block in enumerate(self.blocks):
            for a in self._before[i]:
                x = a.before_block(x, i, ctx)
            x_in = x
            x = block(x, ctx.x0, ctx)
            for a in self._after[i]:
                x = a.after_block(x_in, x, i, ctx)
        return rms_norm(x)

    def logits_from_hidden(self, h: torch.Tensor) -> torch.Tensor:
        weight = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(h, weight.to(h.dtype))
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(logits / cap) if cap > 0 else logits

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
        """Logits (B, T, V) without targets; cross entropy in nats (fp32) with them.

        Training calls the module with targets so that wrappers (DDP, torch.compile) see the
        whole computation in one forward.
        """
        logits = self.logits_from_hidden(self.hidden(ids))
        if targets is None:
            return logits
        logits = logits.float()
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)
        return loss if reduction == "mean" else loss.view_as(targets)

    def loss(self, ids: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return self(ids, targets, reduction)


def is_control(name: str) -> bool:
    return any(p in name for p in CONTROL_PATTERNS)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

# ---------------------------------------------------------------------------- pgolf/artifact/load.py
"""Rebuild a model from an artifact."""


import torch



def model_from_artifact(artifact: Artifact, device: torch.device | str = "cpu") -> GPT:
    preset = preset_from_dict(artifact.preset)
    model = GPT(preset.model)
    state = decode_state_dict(artifact.tensors)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ArtifactError(
            f"artifact does not match its preset's model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.to(device)


def model_from_state(preset: dict, weights: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> GPT:
    """Rebuild a run's float model from its checkpoint (for calibration and analysis)."""
    model = GPT(preset_from_dict(preset).model)
    model.load_state_dict(weights)
    return model.to(device)

# ---------------------------------------------------------------------------- pgolf/quant/registry.py
"""The quantizer registry: name -> function(state_dict, PackConfig) -> list[EncodedTensor]."""


from typing import Callable

import torch


Quantizer = Callable[[dict[str, torch.Tensor], PackConfig], list[EncodedTensor]]
QUANTIZERS: Registry[Quantizer] = Registry("quantizer")


def get_quantizer(name: str) -> Quantizer:
    pass
    pass
    pass
    pass

    return QUANTIZERS.get(name)

# ---------------------------------------------------------------------------- pgolf/train/checkpoint.py
"""Checkpoints: model weights in safetensors (no pickle) plus a JSON state file, written atomically."""


import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "state.json"


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict of the underlying module (no DDP `module.` / compile `_orig_mod.` prefixes)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def save_checkpoint(run_dir: str | os.PathLike, model: torch.nn.Module, state: dict) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (WEIGHTS_NAME + ".tmp")
    save_file(plain_state_dict(model), str(tmp))
    os.replace(tmp, run_dir / WEIGHTS_NAME)
    write_json(run_dir / STATE_NAME, state)


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    run_dir = Path(run_dir)
    weights, state = run_dir / WEIGHTS_NAME, run_dir / STATE_NAME
    for p in (weights, state):
        if not p.is_file():
            raise PgolfError(f"{p}: not found; is {run_dir} a pgolf run directory (pgolf train --out)?")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise PgolfError(f"{weights}: unreadable checkpoint ({exc})") from None
    try:
        meta = json.loads(state.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PgolfError(f"{state}: invalid JSON ({exc.msg})") from None
    return tensors, meta

# ---------------------------------------------------------------------------- pgolf/artifact/pack.py
"""`pgolf pack RUN`: quantize a run's final weights, compress, write the artifact and account
for every byte against the budget."""


from pathlib import Path


ARTIFACT_NAME = "model.pgolf"


def parameter_group(name: str) -> str:
    if name.startswith("addons."):
        return "addon:" + name.split(".")[1]
    if name.startswith("tok_emb") or name.startswith("lm_head"):
        return "embedding"
    if ".attn." in name and name.endswith("weight"):
        return "attention"
    if ".mlp." in name:
        return "mlp"
    return "block scalars"


def pack_run(run_dir: str | Path, out: str | Path | None = None, quant: str | None = None,
             compressor: str | None = None, budget: int | None = None,
             allow_over_budget: bool = False) -> dict:
    run_dir = Path(run_dir)
    weights, state = load_checkpoint(run_dir)
    preset = state["preset"]
    pack_cfg = from_dict(PackConfig, preset["pack"], "pack")
    quant = quant or pack_cfg.quant
    if compressor == "best":
        candidates = [c for c in COMPRESSORS.names() if available(c)]  # "best" of what is installed
    elif compressor:
        candidates = [compressor]
    else:
        candidates = pack_cfg.compressors or [pack_cfg.compressor]
    budget = budget if budget is not None else pack_cfg.budget_bytes
    hessians, calibration = None, None
    if quant.startswith("gptq-int"):
        pass

        hessians, calibration = load_hessians(run_dir)
    tensors = get_quantizer(quant)(weights, pack_cfg, hessians=hessians)
    meta = {"run": str(run_dir.resolve()), "train_summary": state.get("summary", {}),
            "data": state.get("data", {}), "calibration": calibration}
    sizes = {}
    best: bytes | None = None
    for name in candidates:
        blob = encode_artifact(Artifact(preset=preset, quant=quant, tensors=tensors, compressor=name, meta=meta))
        sizes[name] = len(blob)
        if best is None or len(blob) < len(best):
            best, compressor = blob, name
    out = Path(out) if out else run_dir / ARTIFACT_NAME
    atomic_write_bytes(out, best)
    model_bytes = len(best)
    code, code_what = code_bytes()
    groups: dict[str, int] = {}
    for t in tensors:
        g = parameter_group(t.name)
        groups[g] = groups.get(g, 0) + t.nbytes
    total = code + model_bytes
    report = {
        "artifact": str(out),
        "quant": quant,
        "compressor": compressor,
        "compressed_sizes": sizes,
        "code_bytes": code,
        "code_counted": code_what,
        "model_bytes": model_bytes,
        "total_bytes": total,
        "budget_bytes": budget,
        "headroom_bytes": budget - total,
        "raw_bytes_per_group": groups,
        "fits": total <= budget,
        "calibration": calibration,
    }
    if total > budget and not allow_over_budget:
        largest = sorted(groups.items(), key=lambda kv: -kv[1])[:3]
        names = ", ".join(f"{g} {n:,} B raw" for g, n in largest)
        raise BudgetError(
            f"{out}: {total:,} bytes is over the {budget:,}-byte budget by {total - budget:,} "
            f"(largest groups: {names}); pass --allow-over-budget to keep it"
        )
    return report

# ---------------------------------------------------------------------------- pgolf/data/tokenizer.py
"""SentencePiece tokenizers and the contest's per-token byte tables.

The byte tables follow the contest's `val_bpb` exactly (techniques.md §1.5):
- `boundary[v]`: control, unknown or unused pieces (and ids beyond the tokenizer's vocab);
- `base_bytes[v]`: 1 for a byte-fallback piece `<0xNN>`, 0 for a boundary piece, otherwise the
  UTF-8 length of the piece with one leading `▁` removed;
- `leading_space[v]`: the piece starts with `▁`.
A target y after input x then counts `base_bytes[y] + (leading_space[y] and not boundary[x])`.
"""


import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np


SPACE_MARK = "\u2581"  # SentencePiece's "▁"


@dataclass(frozen=True)
class ByteTables:
    base_bytes: np.ndarray  # int64 [V]
    leading_space: np.ndarray  # bool [V]
    boundary: np.ndarray  # bool [V]

    @property
    def size(self) -> int:
        return int(self.base_bytes.shape[0])


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_tokenizer(path: str | os.PathLike):
    """Load a SentencePiece model, with a one-line error for a missing or corrupt file."""
    import sentencepiece as spm

    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"{path}: tokenizer model not found")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as exc:
        raise TokenizerError(f"{path}: not a SentencePiece model ({exc})") from None


def train_tokenizer(
    texts: Iterable[str],
    out_prefix: str | os.PathLike,
    vocab_size: int,
    byte_fallback: bool = True,
    max_sentence_length: int = 16384,
):
    """Train a BPE model with the contest's trainer spec (ids pad=0, bos=1, eos=2, unk=3; NFKC;
    whitespace collapsed; no dummy prefix; digits split).

    One deliberate difference, on by default: `byte_fallback=True`, so characters outside the
    vocabulary cost real bytes instead of hiding inside `<unk>` (the published SP-1024 model has
    no byte fallback; pass `byte_fallback=False` to match it).
    """
    import sentencepiece as spm

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)

    def sentences() -> Iterator[str]:
        # SentencePiece trains on "sentences"; long documents are cut at line breaks so that
        # nothing is dropped for exceeding max_sentence_length.
        for text in texts:
            for line in text.splitlines():
                line = line.strip()
                while line:
                    yield line[:max_sentence_length]
                    line = line[max_sentence_length:]

    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_prefix=str(out_prefix),
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=0.999,
            byte_fallback=byte_fallback,
            split_digits=True,
            normalization_rule_name="nmt_nfkc",
            add_dummy_prefix=False,
            remove_extra_whitespaces=True,
            pad_id=0,
            bos_id=1,
            eos_id=2,
            unk_id=3,
            max_sentence_length=max_sentence_length,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise TokenizerError(f"training a {vocab_size}-piece tokenizer failed: {exc}") from None
    return load_tokenizer(f"{out_prefix}.model")


def build_byte_tables(sp, table_size: int | None = None) -> ByteTables:
    """The contest's bpb lookup tables over max(table_size, sp vocab) ids."""
    sp_vocab = sp.vocab_size()
    size = max(sp_vocab, table_size or 0)
    base = np.zeros(size, dtype=np.int64)
    lead = np.zeros(size, dtype=bool)
    boundary = np.ones(size, dtype=bool)
    for i in range(sp_vocab):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith(SPACE_MARK):
            lead[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return ByteTables(base_bytes=base, leading_space=lead, boundary=boundary)


class Normalizer:
    """Reusable normalizer for many documents (building one is not free)."""

    def __init__(self, sp_model_path: str | os.PathLike) -> None:
        import sentencepiece as spm

        self._n = spm.SentencePieceNormalizer(model_file=str(sp_model_path))

    def __call__(self, text: str) -> str:
        return self._n.normalize(text).replace(SPACE_MARK, " ")

# ---------------------------------------------------------------------------- pgolf/data/bpb.py
"""Exact bits-per-byte accounting, as the contest computes val_bpb (techniques.md §1.5).

    bytes_t = base_bytes[y_t] + [leading_space[y_t] and not boundary[x_t]]
    bpb     = (Σ_t nats_t / ln 2) / Σ_t bytes_t

Sums are accumulated in float64 (and int64 for bytes) so that order and sharding do not change
the result beyond float64 rounding.
"""


import math
from dataclasses import dataclass

import numpy as np
import torch



def target_bytes(tables: ByteTables, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Bytes credited to each target token given the token before it (numpy, int64)."""
    inputs = np.asarray(inputs, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    extra = tables.leading_space[targets] & ~tables.boundary[inputs]
    return tables.base_bytes[targets] + extra.astype(np.int64)


class TorchByteTables:
    """The byte tables as tensors on a device, for counting inside an evaluation loop."""

    def __init__(self, tables: ByteTables, device: torch.device | str = "cpu") -> None:
        self.base_bytes = torch.as_tensor(tables.base_bytes, dtype=torch.int64, device=device)
        self.leading_space = torch.as_tensor(tables.leading_space, dtype=torch.bool, device=device)
        self.boundary = torch.as_tensor(tables.boundary, dtype=torch.bool, device=device)

    def count(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        extra = self.leading_space[targets] & ~self.boundary[inputs]
        return self.base_bytes[targets] + extra.to(torch.int64)


@dataclass
class BpbTotals:
    """Running sums for bpb; add() per batch, merge across ranks by adding the fields."""

    nats: float = 0.0
    tokens: int = 0
    bytes: int = 0

    def add(self, nats: float, tokens: int, nbytes: int) -> None:
        self.nats += float(nats)
        self.tokens += int(tokens)
        self.bytes += int(nbytes)

    @property
    def loss(self) -> float:
        return self.nats / max(self.tokens, 1)

    @property
    def bpb(self) -> float:
        if self.bytes == 0:
            return float("nan")
        return self.nats / math.log(2) / self.bytes


# ---------------------------------------------------------------------------- pgolf/data/shards.py
"""The contest's token shard format.

A shard is a 1024-byte header of 256 little-endian int32 (magic 20240520, version 1, token count,
then zeros) followed by `count` little-endian uint16 token ids. Files are named
`fineweb_{train,val}_NNNNNN.bin`. Readers memory-map the body; every malformed file raises a
`ShardError` that names the file and the problem.
"""


import os
import re
from pathlib import Path

import numpy as np


SHARD_MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
MAX_VOCAB = 1 << 16
SPLITS = ("train", "val")
_NAME = re.compile(r"^fineweb_(train|val)_(\d{6})\.bin$")


def shard_name(split: str, index: int) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return f"fineweb_{split}_{index:06d}.bin"


def read_header(path: str | os.PathLike) -> int:
    """Validate a shard's header against its file size and return its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except FileNotFoundError:
        raise ShardError(path, "file not found") from None
    except IsADirectoryError:
        raise ShardError(path, "is a directory, not a shard file") from None
    if len(raw) < HEADER_BYTES:
        raise ShardError(path, f"truncated header: {len(raw)} of {HEADER_BYTES} bytes")
    header = np.frombuffer(raw, dtype="<i4")
    if int(header[0]) != SHARD_MAGIC:
        raise ShardError(path, f"bad magic {int(header[0])} (expected {SHARD_MAGIC}); not a token shard")
    if int(header[1]) != VERSION:
        raise ShardError(path, f"unsupported shard version {int(header[1])} (expected {VERSION})")
    count = int(header[2])
    if count < 0:
        raise ShardError(path, f"negative token count {count} in header")
    expected = HEADER_BYTES + 2 * count
    if size < expected:
        raise ShardError(
            path, f"truncated: header says {count} tokens ({expected} bytes) but file has {size} bytes"
        )
    if size > expected:
        raise ShardError(
            path, f"size mismatch: header says {count} tokens ({expected} bytes) but file has {size} bytes"
        )
    return count


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a shard's tokens (read-only uint16 array) after validating its header."""
    count = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(count,))


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> None:
    """Write tokens as a shard, atomically (temporary file, then rename)."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= MAX_VOCAB):
        raise DataError(f"{path}: token ids must lie in [0, {MAX_VOCAB}) to fit uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, VERSION, tokens.size
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(header.tobytes())
            f.write(tokens.astype(TOKEN_DTYPE, copy=False).tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def list_shards(directory: str | os.PathLike, split: str) -> list[Path]:
    """The shards of one split in a directory, in index order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: data directory not found")
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and m.group(1) == split:
            found.append((int(m.group(2)), p))
    return [p for _, p in sorted(found)]


def load_split(directory: str | os.PathLike, split: str) -> np.ndarray:
    """All tokens of a split concatenated into memory (validation is small enough for this)."""
    paths = list_shards(directory, split)
    if not paths:
        raise DataError(f"{directory}: no fineweb_{split}_*.bin shards found")
    parts = [np.asarray(read_shard(p)) for p in paths]
    tokens = np.concatenate(parts) if len(parts) > 1 else np.array(parts[0])
    if tokens.size == 0:
        raise DataError(f"{directory}: the {split} split is empty")
    return tokens


def check_vocab(tokens: np.ndarray, vocab_size: int, what: str) -> None:
    """Refuse token ids the model cannot embed, instead of an index error deep in a forward pass."""
    if tokens.size and int(tokens.max()) >= vocab_size:
        bad = int(tokens.max())
        raise DataError(
            f"{what}: token id {bad} >= model vocab {vocab_size}; "
            "the shards were built with a larger tokenizer than the model expects"
        )

# ---------------------------------------------------------------------------- pgolf/data/build.py
"""Build contest-format shards from any text corpus.

Text (JSONL with a `text` field, one document per line; or plain files, one document per file)
→ SentencePiece (a given model, or a BPE model trained here) → each document as `[BOS] + pieces`
with no EOS, as the contest's export does → `fineweb_{val,train}_NNNNNN.bin` + `manifest.json`.

Validation is either the first K documents overall (`val_docs`, the contest's rule: its val set
is the first 50,000 documents) or the last fraction F of each input file's documents
(`val_fraction`, the shared dev corpus's benchmark split).
"""


import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm


MANIFEST_NAME = "manifest.json"
TOKENIZER_NAME = "tokenizer.model"
DEFAULT_SHARD_TOKENS = 100_000_000  # the contest's shard size
ENCODE_BATCH_DOCS = 256


def input_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand directories to their .jsonl/.txt files (sorted); keep explicit files as given."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix in (".jsonl", ".txt") and q.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: input not found")
    if not files:
        raise DataError("no input text files (.jsonl or .txt) found")
    return files


def read_documents(path: Path) -> Iterator[str]:
    """Documents of one file: JSONL lines' `text` field, or the whole file for plain text."""
    if path.suffix != ".jsonl":
        yield path.read_text(encoding="utf-8")
        return
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise DataError(f"{path}:{lineno}: record has no string field 'text'")
            yield text


def count_documents(path: Path) -> int:
    if path.suffix != ".jsonl":
        return 1
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


@dataclass
class SplitStats:
    docs: int = 0
    tokens: int = 0
    utf8_bytes: int = 0  # raw document bytes
    normalized_bytes: int = 0  # bytes after the tokenizer's normalization
    counted_bytes: int = 0  # bytes the contest's bpb credits
    unk_tokens: int = 0
    shards: list[str] = field(default_factory=list)

    @property
    def hidden_bytes(self) -> int:
        """Normalized bytes the bpb never credits: inside <unk> pieces, or a space after one."""
        return self.normalized_bytes - self.counted_bytes

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["hidden_bytes"] = self.hidden_bytes
        return d


class ShardWriter:
    """Accumulates a token stream and writes it as fixed-size shards of one split."""

    def __init__(self, out_dir: Path, split: str, shard_tokens: int, stats: SplitStats) -> None:
        self.out_dir, self.split, self.shard_tokens, self.stats = out_dir, split, shard_tokens, stats
        self.buffer: list[np.ndarray] = []
        self.buffered = 0

    def add(self, tokens: np.ndarray) -> None:
        self.buffer.append(tokens)
        self.buffered += tokens.size
        while self.buffered >= self.shard_tokens:
            stream = np.concatenate(self.buffer)
            self._write(stream[: self.shard_tokens])
            rest = stream[self.shard_tokens :]
            self.buffer, self.buffered = [rest], rest.size

    def close(self) -> None:
        if self.buffered:
            self._write(np.concatenate(self.buffer))
        self.buffer, self.buffered = [], 0

    def _write(self, tokens: np.ndarray) -> None:
        name = shard_name(self.split, len(self.stats.shards))
        write_shard(self.out_dir / name, tokens)
        self.stats.shards.append(name)


def build_shards(
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    vocab_size: int = 1024,
    byte_fallback: bool = True,
    val_docs: int | None = None,
    val_fraction: float | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    progress: bool | None = None,
) -> dict:
    """Tokenize `inputs` into train/val shards under `out_dir`; return the manifest."""
    if (val_docs is None) == (val_fraction is None):
        raise DataError("give exactly one of val_docs (first K documents) or val_fraction")
    if val_fraction is not None and not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if val_docs is not None and val_docs < 1:
        raise DataError(f"val_docs must be >= 1, got {val_docs}")
    files = input_files(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in list(out_dir.glob("fineweb_*.bin")):  # never mix shards of two builds
        old.unlink()

    tok_path = out_dir / TOKENIZER_NAME
    if tokenizer is not None:
        sp = load_tokenizer(tokenizer)
        if Path(tokenizer).resolve() != tok_path.resolve():
            shutil.copyfile(tokenizer, tok_path)
        trained = False
    else:
        texts = (doc for f in files for doc in read_documents(f))
        sp = train_tokenizer(texts, out_dir / "tokenizer", vocab_size, byte_fallback=byte_fallback)
        trained = True
    tables = build_byte_tables(sp)
    normalize = Normalizer(tok_path)
    bos = sp.bos_id()
    if bos < 0:
        raise DataError(f"{tok_path}: tokenizer has no BOS piece; the contest format needs one")
    unk = sp.unk_id()

    counts = [count_documents(f) for f in files]
    stats = {s: SplitStats() for s in SPLITS}
    writers = {s: ShardWriter(out_dir, s, shard_tokens, stats[s]) for s in SPLITS}
    bar = tqdm(total=sum(counts), unit="doc", desc="tokenize", disable=not _want_progress(progress))
    seen = 0

    def flush(batch: list[tuple[str, str]]) -> None:
        ids = sp.encode([t for _, t in batch], num_threads=os.cpu_count() or 1)
        normalized = [normalize(t) for _, t in batch]
        for (split, text), pieces, norm in zip(batch, ids, normalized):
            doc = np.empty(len(pieces) + 1, dtype=np.int64)
            doc[0] = bos
            doc[1:] = pieces
            st = stats[split]
            st.docs += 1
            st.tokens += doc.size
            st.utf8_bytes += len(text.encode("utf-8"))
            st.normalized_bytes += len(norm.encode("utf-8"))
            st.counted_bytes += int(target_bytes(tables, doc[:-1], doc[1:]).sum())
            st.unk_tokens += int((doc == unk).sum())
            writers[split].add(doc.astype(np.uint16))
        bar.update(len(batch))

    batch: list[tuple[str, str]] = []
    for f, n_docs in zip(files, counts):
        n_val_here = int(round(n_docs * val_fraction)) if val_fraction is not None else 0
        for i, text in enumerate(read_documents(f)):
            if val_fraction is not None:
                split = "val" if i >= n_docs - n_val_here else "train"
            else:
                split = "val" if seen < val_docs else "train"
            seen += 1
            batch.append((split, text))
            if len(batch) >= ENCODE_BATCH_DOCS:
                flush(batch)
                batch = []
    if batch:
        flush(batch)
    bar.close()
    for w in writers.values():
        w.close()
    for split in SPLITS:
        if stats[split].docs == 0:
            raise DataError(
                f"the {split} split is empty ({seen} documents in all); "
                "adjust --val-docs / --val-fraction or give more text"
            )

    manifest = {
        "format": "pgolf-data/1",
        "tokenizer": {
            "file": TOKENIZER_NAME,
            "source": str(tokenizer) if tokenizer is not None else "trained",
            "sha256": file_sha256(tok_path),
            "vocab_size": sp.vocab_size(),
            "trained_here": trained,
        },
        "inputs": [{"path": str(f), "docs": n} for f, n in zip(files, counts)],
        "split_rule": {"val_docs": val_docs} if val_docs is not None else {"val_fraction": val_fraction},
        "bos_id": bos,
        "splits": {s: stats[s].to_dict() for s in SPLITS},
    }
    tmp = out_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST_NAME)
    return manifest


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    import sys

    return sys.stderr.isatty()


def read_manifest(data_dir: str | os.PathLike) -> dict | None:
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg})") from None


def resolve_tokenizer(data_dir: str | os.PathLike, tokenizer: str | os.PathLike | None) -> Path:
    """The tokenizer to use for a data directory: the explicit one, else the one built beside it."""
    if tokenizer is not None:
        return Path(tokenizer)
    candidate = Path(data_dir) / TOKENIZER_NAME
    if candidate.is_file():
        return candidate
    raise DataError(
        f"{data_dir}: no {TOKENIZER_NAME} in the data directory; pass --tokenizer PATH.model"
    )

# ---------------------------------------------------------------------------- pgolf/data/loader.py
"""The training token stream (techniques.md §1.6): sequential over the sorted train shards,
wrapping around, no shuffling.

Each micro-step takes `(local_tokens + 1) · world` contiguous tokens; rank r uses span r, with
`x = span[:-1]`, `y = span[1:]` as (B, T). So 1 rank with 2 micro-steps and 2 ranks with 1 see
exactly the same batches, and each rank reads only its own part of the stream.
"""


import os

import numpy as np
import torch



class TokenStream:
    def __init__(self, data_dir: str | os.PathLike, split: str = "train") -> None:
        self.paths = list_shards(data_dir, split)
        if not self.paths:
            raise DataError(f"{data_dir}: no fineweb_{split}_*.bin shards found")
        self.shards = [read_shard(p) for p in self.paths]
        if sum(s.size for s in self.shards) == 0:
            raise DataError(f"{data_dir}: the {split} split is empty")
        self.shard_index = 0
        self.position = 0

    def state(self) -> dict:
        return {"shard_index": self.shard_index, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.shard_index, self.position = int(state["shard_index"]), int(state["position"])

    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            shard = self.shards[self.shard_index]
            avail = shard.size - self.position
            if avail <= 0:
                self.shard_index = (self.shard_index + 1) % len(self.shards)
                self.position = 0
                continue
            k = min(n, avail)
            parts.append(np.asarray(shard[self.position : self.position + k]))
            self.position += k
            n -= k
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class DistributedTokenLoader:
    def __init__(self, data_dir: str | os.PathLike, rank: int, world_size: int,
                 device: torch.device, vocab_size: int | None = None) -> None:
        self.stream = TokenStream(data_dir, "train")
        self.rank, self.world_size, self.device = rank, world_size, device
        self.vocab_size = vocab_size

    def next_batch(self, global_tokens: int, seq_len: int, micro_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        local_tokens = global_tokens // (self.world_size * micro_steps)
        if local_tokens <= 0 or local_tokens % seq_len:
            raise DataError(
                f"tokens_per_step {global_tokens} / (world {self.world_size} x micro-steps "
                f"{micro_steps}) = {local_tokens} is not a positive multiple of seq_len {seq_len}"
            )
        span = local_tokens + 1
        where = (self.stream.paths[self.stream.shard_index], self.stream.position)
        chunk = self.stream.take(span * self.world_size)
        if self.vocab_size is not None and int(chunk.max()) >= self.vocab_size:
            # Checked per batch (cheap on the host) rather than by scanning every shard up front.
            raise DataError(
                f"{where[0]} (near token {where[1]}): token id {int(chunk.max())} >= model vocab "
                f"{self.vocab_size}; the shards were built with a larger tokenizer than the model expects"
            )
        local = torch.from_numpy(chunk[self.rank * span : (self.rank + 1) * span].astype(np.int64))
        x = local[:-1].view(-1, seq_len)
        y = local[1:].view(-1, seq_len)
        pin = self.device.type == "cuda"
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=pin), y.to(self.device, non_blocking=pin)

# ---------------------------------------------------------------------------- pgolf/train/distributed.py
"""Device and process-group plumbing, kept out of model code.

Under `torchrun` (RANK/WORLD_SIZE/LOCAL_RANK set) the process group uses NCCL on CUDA and gloo
on CPU; otherwise everything runs in one process.
"""


import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Runtime:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.device.type == "cuda" else None


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def init_runtime(device: str = "auto") -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_world, 1)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(rank=rank, world_size=world, local_rank=local_rank, device=dev)


# Each batch shape, grad mode and model instance is one compiled entry of GPT.forward's code
# object; training, validation and the eval pipeline's final partial batches exceed dynamo's
# default of 8 entries, after which it silently falls back to eager.
COMPILE_CACHE_ENTRIES = 64


def compile_module(module: torch.nn.Module) -> torch.nn.Module:
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), COMPILE_CACHE_ENTRIES))
    return torch.compile(module, dynamic=False)


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

# ---------------------------------------------------------------------------- pgolf/evaluate/methods/base.py
"""The contract between the evaluation pipeline and one evaluation-time method.

A method has one *role*, which says where the pipeline calls it during its single left-to-right
pass over the validation stream:

- ``windows``  which windows are run and which positions scored (standard, sliding);
- ``prepare``  runs once before scoring (only the illegal pre-quant TTT fixture);
- ``adapt``    cuts the stream into chunks; after a chunk is fully scored it may train on it (TTT);
- ``fit``      computes a batch's logits itself, e.g. by fitting a delta first (SLOT);
- ``mix``      turns the model's distribution into the scored one and learns from scored tokens
               (Hedge).

Each method reads its options from the preset's ``[evaluation.<section>]`` table into its own
dataclass (unknown keys are rejected), and reports them in the results. ``legal`` is the
method's own claim; the audit (`pgolf audit`) checks it by experiment.
"""


from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch



@dataclass
class EvalContext:
    tokens: np.ndarray  # the validation stream (uint16)
    tables: TorchByteTables
    preset: Preset
    runtime: Runtime
    seq_len: int
    observer: Any = None  # the audit's recorder, or None
    log: Any = field(default=None)

    def notify(self, event: str, **info: Any) -> None:
        """Tell the audit's recorder what happened. `on_update(method, state, spans, used_from)`:
        state derived from the targets at positions in `spans` ([first, last) pairs) will be used
        to score positions ≥ `used_from`."""
        if self.observer is not None:
            getattr(self.observer, event)(**info)


class EvalMethod:
    name: ClassVar[str]
    role: ClassVar[str]
    section: ClassVar[str]  # the preset's [evaluation.<section>] table
    options: ClassVar[type]  # dataclass of options
    legal: ClassVar[bool] = True
    why_illegal: ClassVar[str] = ""

    def __init__(self, config: dict[str, Any], ctx: EvalContext) -> None:
        self.cfg = from_dict(self.options, config, where=f"evaluation.{self.section}")
        self.ctx = ctx

    def describe(self) -> dict[str, Any]:
        out = {"method": self.name, "role": self.role, "legal_by_design": self.legal, **asdict(self.cfg)}
        if not self.legal:
            out["why_illegal"] = self.why_illegal
        return out


METHODS: Registry[type[EvalMethod]] = Registry("evaluation method")


def register(cls: type[EvalMethod]) -> type[EvalMethod]:
    return METHODS.register(cls.name)(cls)


def load_methods(names: list[str] | None = None) -> Registry[type[EvalMethod]]:
    """Import the modules defining `names` (all methods when None); already-defined ones (e.g. in
    an exported single file) are used as they are."""
    import difflib
    import importlib

    pass
    pass

    for name in MODULE_OF if names is None else names:
        if name in METHODS:
            continue
        if name not in MODULE_OF:
            close = difflib.get_close_matches(name, MODULE_OF, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown evaluation method {name!r}{hint}; known: {', '.join(sorted(MODULE_OF))}")
        importlib.import_module(f"pgolf.evaluate.methods.{MODULE_OF[name]}")
    return METHODS


def batch_tensors(tokens: np.ndarray, windows, seq_len: int, device: torch.device):
    """Inputs and targets of a batch of windows, padded to seq_len, and the flat indices
    (b·seq_len + j) and stream positions of the positions they score."""
    x = np.zeros((len(windows), seq_len), dtype=np.int64)
    y = np.zeros((len(windows), seq_len), dtype=np.int64)
    flat, positions = [], []
    for b, w in enumerate(windows):
        x[b, : w.length] = tokens[w.start : w.start + w.length]
        y[b, : w.length] = tokens[w.start + 1 : w.start + w.length + 1]
        j = np.arange(w.score_from, w.length)
        flat.append(b * seq_len + j)
        positions.append(w.start + j)
    flat_idx = torch.from_numpy(np.concatenate(flat)).to(device)
    return (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device), flat_idx,
            np.concatenate(positions))

# ---------------------------------------------------------------------------- pgolf/evaluate/standard.py
"""Standard evaluation, as the contest's `eval_val` (techniques.md §2.4, §1.5).

The validation stream is cut into non-overlapping sequences of T tokens (the first
⌊(N−1)/T⌋·T + 1 tokens are used); every target is scored once with the full softmax; loss,
token and byte sums are accumulated in float64 and summed across ranks.
"""


import contextlib

import numpy as np
import torch



MAX_FORWARD_TOKENS = 65_536


def usable_tokens(val_tokens: np.ndarray, seq_len: int, limit: int = 0) -> np.ndarray:
    n = val_tokens.size
    if limit > 0:
        n = min(n, limit + 1)
    usable = ((n - 1) // seq_len) * seq_len
    if usable <= 0:
        raise DataError(
            f"the validation split has {val_tokens.size} tokens, fewer than one sequence of {seq_len}"
        )
    return val_tokens[: usable + 1]


def autocast_context(runtime: Runtime):
    if runtime.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=runtime.device.type, dtype=runtime.autocast_dtype)


@torch.no_grad()
def evaluate_standard(model: torch.nn.Module, val_tokens: np.ndarray, tables: TorchByteTables,
                      seq_len: int, batch_tokens: int, runtime: Runtime, limit: int = 0) -> BpbTotals:
    """Score the validation stream; `model.loss(x, y, reduction="none")` gives per-token nats."""
    tokens = usable_tokens(val_tokens, seq_len, limit)
    total_seqs = (tokens.size - 1) // seq_len
    first = total_seqs * runtime.rank // runtime.world_size
    last = total_seqs * (runtime.rank + 1) // runtime.world_size
    # One forward scores at most MAX_FORWARD_TOKENS per rank (the contest's per-GPU val batch):
    # the sums do not depend on batching, and a 524K-token forward does not fit one CPU's memory.
    batch_seqs = max(1, min(batch_tokens // (seq_len * runtime.world_size), MAX_FORWARD_TOKENS // seq_len))
    sums = torch.zeros(3, dtype=torch.float64, device=runtime.device)
    was_training = model.training
    model.eval()
    for s in range(first, last, batch_seqs):
        e = min(s + batch_seqs, last)
        raw = torch.from_numpy(tokens[s * seq_len : e * seq_len + 1].astype(np.int64)).to(runtime.device)
        x, y = raw[:-1].view(-1, seq_len), raw[1:].view(-1, seq_len)
        with autocast_context(runtime):
            nats = model(x, y, reduction="none")
        sums[0] += nats.double().sum()
        sums[1] += y.numel()
        sums[2] += tables.count(x, y).sum().double()
    model.train(was_training)
    all_reduce_sum_(sums)
    return BpbTotals(nats=float(sums[0]), tokens=int(sums[1]), bytes=int(sums[2]))

# ---------------------------------------------------------------------------- pgolf/evaluate/pipeline.py
"""One left-to-right evaluation pass composing the selected methods (see methods/base.py).

    for each chunk (the whole stream unless an `adapt` method cuts it):
        for each batch of the chunk's windows (this rank's contiguous share):
            logits  = fit method's logits, or the model's (no gradient)
            nll     = mix method's score, or −log softmax(logits)[target]   (scored positions only)
        mix.after_chunk(chunk)          # learns only from tokens already scored
        adapt.after_chunk(chunk)        # trains only on tokens already scored; never on the last

A window belongs to the chunk holding its first scored position. Sums are float64 and
all-reduced across ranks at the end; per-position scores are kept when `keep_scores` (audit).
"""


import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


ROLE_ORDER = ("prepare", "windows", "adapt", "fit", "mix")


@dataclass
class PipelineResult:
    totals: BpbTotals
    seconds: float
    methods: list[dict]
    scores: np.ndarray | None = None  # nats per target position (NaN = unscored), if kept
    score_counts: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"val_loss": self.totals.loss, "val_bpb": self.totals.bpb, "tokens": self.totals.tokens,
                "bytes": self.totals.bytes, "eval_seconds": self.seconds, "methods": self.methods, **self.extra}


def method_config(preset: Preset, cls: type[EvalMethod], overrides: dict[str, dict] | None) -> dict:
    base = dict(preset.evaluation.get(cls.section, {}) or {})
    base.update((overrides or {}).get(cls.section, {}))
    return base


def build_methods(names: list[str], ctx: EvalContext, overrides: dict[str, dict] | None = None) -> dict[str, EvalMethod]:
    registry = load_methods(list(names) + ["standard"])
    by_role: dict[str, EvalMethod] = {}
    for name in names:
        cls = registry.get(name)
        if cls.role in by_role:
            raise ConfigError(f"methods {by_role[cls.role].name!r} and {name!r} are both {cls.role!r} methods; "
                              "pick one")
        by_role[cls.role] = cls(method_config(ctx.preset, cls, overrides), ctx)
    if "windows" not in by_role:
        by_role["windows"] = registry.get("standard")(method_config(ctx.preset, registry.get("standard"), overrides), ctx)
    return by_role


def run_pipeline(model: torch.nn.Module, tokens: np.ndarray, tables: TorchByteTables, preset: Preset,
                 runtime: Runtime, methods: list[str], overrides: dict[str, dict] | None = None,
                 observer: Any = None, keep_scores: bool = False, limit: int = 0,
                 time_budget: float = 0.0, strict_budget: bool = False) -> PipelineResult:
    """`time_budget` (seconds): after each chunk the run time is projected from the windows done
    so far; an overrun is reported once in `warnings`, or stops the run with `strict_budget`."""
    t0 = time.perf_counter()
    warnings: list[str] = []
    if limit > 0:
        tokens = tokens[: limit + 1]
    ctx = EvalContext(tokens=tokens, tables=tables, preset=preset, runtime=runtime,
                      seq_len=preset.eval.seq_len, observer=observer)
    by_role = build_methods(methods, ctx, overrides)
    win = by_role["windows"]
    if getattr(win.cfg, "seq_len", 0):
        ctx.seq_len = win.cfg.seq_len
    prepare, adapt, fit, mix = (by_role.get(r) for r in ("prepare", "adapt", "fit", "mix"))
    if prepare is not None or adapt is not None:
        model = copy.deepcopy(model)  # weights change during the pass; the caller's model must not

    was_training = model.training
    requires_grad = [p.requires_grad for p in model.parameters()]  # TTT freezes some; restore after
    model.eval()
    if prepare is not None:
        prepare.prepare(model)
    windows = win.windows(tokens.size)
    n_targets = tokens.size - 1
    chunk = (adapt or mix).chunk_tokens if (adapt or mix) is not None else n_targets
    n_chunks = (n_targets + chunk - 1) // chunk
    chunks: list[list] = [[] for _ in range(n_chunks)]
    for w in windows:
        chunks[(w.start + w.score_from) // chunk].append(w)

    sums = torch.zeros(3, dtype=torch.float64, device=runtime.device)
    scores = np.full(n_targets, np.nan) if keep_scores else None
    counts = np.zeros(n_targets, dtype=np.int32) if keep_scores else None
    batch = getattr(fit.cfg, "batch_windows", 0) if fit is not None else 0
    batch = batch or win.cfg.batch_windows
    done = 0
    for k, chunk_windows in enumerate(chunks):
        lo = len(chunk_windows) * runtime.rank // runtime.world_size
        hi = len(chunk_windows) * (runtime.rank + 1) // runtime.world_size
        mine = chunk_windows[lo:hi]
        scoring = adapt.scoring_weights(model) if adapt is not None else contextlib.nullcontext()
        with scoring:
            for b in range(0, len(mine), batch):
                group = mine[b : b + batch]
                x, y, flat, positions = batch_tensors(tokens, group, ctx.seq_len, runtime.device)
                if fit is not None:
                    logits = fit.logits(model, x, y, flat, group)
                else:
                    with torch.no_grad(), autocast_context(runtime):
                        logits = model(x)
                rows = logits.reshape(-1, logits.size(-1)).index_select(0, flat).float()
                targets = y.reshape(-1).index_select(0, flat)
                inputs = x.reshape(-1).index_select(0, flat)
                if observer is not None and hasattr(observer, "sample_rows"):
                    sel = observer.sample_rows(positions)  # the full distribution at sampled rows, as scored
                    if len(sel):
                        idx = torch.as_tensor(sel, device=rows.device)
                        full = (mix.distribution(rows[idx], inputs[idx], positions[sel]) if mix is not None
                                else torch.softmax(rows[idx].double(), dim=-1))
                        observer.on_distribution(positions=positions[sel], mass=full.sum(-1).double().cpu().numpy())
                if mix is not None:
                    nll = mix.score(rows, inputs, targets, positions)
                else:
                    nll = -torch.log_softmax(rows, dim=-1).gather(1, targets[:, None]).squeeze(1)
                nll = nll.double()
                sums[0] += nll.sum()
                sums[1] += nll.numel()
                sums[2] += tables.count(inputs, targets).sum().double()
                if keep_scores:
                    scores[positions] = nll.cpu().numpy()
                    np.add.at(counts, positions, 1)
                ctx.notify("on_scored", positions=positions, rows=rows, targets=targets, nll=nll)
        lo_pos, hi_pos = k * chunk, min((k + 1) * chunk, n_targets)
        done += len(chunk_windows)
        if time_budget > 0 and not warnings and k < n_chunks - 1:
            projected = (time.perf_counter() - t0) * len(windows) / max(done, 1)
            if projected > time_budget:
                msg = (f"evaluation will overrun its {time_budget:g} s budget: {projected:.0f} s projected "
                       f"after {done:,} of {len(windows):,} windows")
                if strict_budget:
                    raise BudgetError(msg + " (stopped by --strict-budget)")
                warnings.append(msg)
        if mix is not None:
            mix.after_chunk(lo_pos, hi_pos)
        if adapt is not None and k < n_chunks - 1:
            adapt.after_chunk(model, lo_pos, hi_pos, k, n_chunks)
    model.train(was_training)
    for p, flag in zip(model.parameters(), requires_grad):
        p.requires_grad_(flag)
    all_reduce_sum_(sums)
    totals = BpbTotals(nats=float(sums[0]), tokens=int(sums[1]), bytes=int(sums[2]))
    described = [by_role[r].describe() for r in ROLE_ORDER if r in by_role]
    described[[d["role"] for d in described].index("windows")]["seq_len"] = ctx.seq_len
    return PipelineResult(totals=totals, seconds=time.perf_counter() - t0, methods=described,
                          scores=scores, score_counts=counts, extra={"warnings": warnings})

# ---------------------------------------------------------------------------- pgolf/train/averaging.py
"""Weight averaging during training, registered by name (`train.averaging`).

- "ema" (PR #287; 11L lineage): an fp32 copy of every parameter and buffer, initialised at
  step 0 with no bias correction, θ̄ ← d·θ̄ + (1−d)·θ after every optimizer step (d = 0.997,
  half-life ≈ 231 steps; 0.9965 in later records). The final weights are θ̄.
- "swa": the uniform average of snapshots taken every `swa_every` steps once the LR multiplier
  is below `swa_start_lr_scale` (the 2026-03-20 SWA records); the final weights are that average
  (falling back to the live weights if no snapshot was taken).
- "polyak": the same EMA with d = 0.998, the TTT-time averaging of #700/#731 (its eval-time use
  belongs to the TTT method; registered here so one implementation serves both).
The seeds' "tight SWA" was collected but never applied (techniques.md §4.4), so their presets use
"ema" alone.
"""


import torch
from torch import nn



class Averager:
    def update(self, model: nn.Module, step: int, lr_scale: float) -> None: ...

    def apply_to(self, model: nn.Module) -> None: ...


AVERAGERS: Registry[type] = Registry("weight averaging")


@AVERAGERS.register("none")
class NoAveraging(Averager):
    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        pass

    def update(self, model, step, lr_scale):
        return None

    def apply_to(self, model):
        return None


@AVERAGERS.register("ema")
class EMA(Averager):
    def __init__(self, model: nn.Module, cfg: TrainConfig, decay: float | None = None) -> None:
        self.decay = cfg.ema_decay if decay is None else decay
        self.names = [n for n, t in model.state_dict().items() if t.is_floating_point()]
        state = model.state_dict()
        self.shadow = [state[n].detach().float().clone() for n in self.names]

    @torch.no_grad()
    def update(self, model, step, lr_scale):
        state = model.state_dict()
        live = [state[n].detach().float() for n in self.names]
        torch._foreach_lerp_(self.shadow, live, 1.0 - self.decay)

    @torch.no_grad()
    def apply_to(self, model):
        state = model.state_dict()
        for n, avg in zip(self.names, self.shadow):
            state[n].copy_(avg.to(state[n].dtype))


@AVERAGERS.register("polyak")
class Polyak(EMA):
    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__(model, cfg, decay=0.998)


@AVERAGERS.register("swa")
class SWA(Averager):
    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        self.every, self.start = cfg.swa_every, cfg.swa_start_lr_scale
        self.names = [n for n, t in model.state_dict().items() if t.is_floating_point()]
        self.sum: list[torch.Tensor] | None = None
        self.count = 0

    @torch.no_grad()
    def update(self, model, step, lr_scale):
        if lr_scale >= self.start or step % self.every:
            return
        state = model.state_dict()
        live = [state[n].detach().float() for n in self.names]
        if self.sum is None:
            self.sum = [t.clone() for t in live]
        else:
            torch._foreach_add_(self.sum, live)
        self.count += 1

    @torch.no_grad()
    def apply_to(self, model):
        if not self.count:
            return
        state = model.state_dict()
        for n, total in zip(self.names, self.sum):
            state[n].copy_((total / self.count).to(state[n].dtype))


def build_averager(model: nn.Module, cfg: TrainConfig) -> Averager:
    return AVERAGERS.get(cfg.averaging)(model, cfg)

# ---------------------------------------------------------------------------- pgolf/train/clock.py
"""The training clock: counts only optimizer steps, and decides the stop without stalling the GPU.

The contest's script reads its wallclock after every step and, under torchrun, all-reduces a
"cap reached" flag on the GPU and calls `.item()`: a host–device sync per step, during which
the GPU idles while Python launches the next step. Here, after launching step s we wait only
for step s−1's completion event (the GPU still has step s queued), so the host reads a clock that
is at most one step ahead of the device; ranks agree on the stop through a CPU (gloo) all-reduce
that never touches the CUDA stream. The stop may therefore come one step later than the
contest's rule would stop; the recorded training time is exact (synchronised on pause).
"""


import time

import torch
import torch.distributed as dist



class TrainingClock:
    def __init__(self, runtime: Runtime) -> None:
        self.cuda = runtime.device.type == "cuda"
        self.elapsed_ms = 0.0  # committed time of finished (paused) intervals
        self._t0: float | None = None
        self._pending: torch.cuda.Event | None = None
        self._group = None
        if runtime.distributed and dist.is_initialized():
            # A CPU group for the stop flag: a gloo collective never waits on the CUDA stream.
            self._group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def resume(self) -> None:
        self._sync()
        self._pending = None
        self._t0 = time.perf_counter()

    def pause(self) -> float:
        """Stop counting (e.g. for validation); returns the exact training time so far in ms."""
        if self._t0 is not None:
            self._sync()
            self.elapsed_ms += 1000.0 * (time.perf_counter() - self._t0)
            self._t0 = None
        return self.elapsed_ms

    def add(self, ms: float) -> None:
        """Count work done outside the step loop (e.g. GPTQ calibration inside the cap)."""
        self.elapsed_ms += ms

    def now_ms(self) -> float:
        running = 1000.0 * (time.perf_counter() - self._t0) if self._t0 is not None else 0.0
        return self.elapsed_ms + running

    def step_launched(self) -> float:
        """Call after launching a step: waits for the previous step, returns the lagged clock."""
        if self.cuda:
            event = torch.cuda.Event()
            event.record()
            if self._pending is not None:
                self._pending.synchronize()
            self._pending = event
        return self.now_ms()

    def agree(self, flag: bool) -> bool:
        """True when any rank's flag is true (identical answer on every rank)."""
        if self._group is None:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._group)
        return bool(t.item())

# ---------------------------------------------------------------------------- pgolf/train/optim/muon.py
"""Muon: momentum SGD whose update is orthogonalised by a Newton–Schulz iteration.

Per step, for each 2-D matrix: m ← μ·m + g; g' = g + μ·m (Nesterov); O = NS5(g');
W ← W − lr·O·√max(1, rows/cols). Under torchrun each rank orthogonalises only the matrices
i ≡ rank (mod world) and one all-reduce of a flat buffer shares the updates, so the work is not
repeated N times (the contest's scheme; DDP has already averaged the gradients).

Parallel Muon / parameter banking (PR #399; #549, #1150, #1207) stacks same-shape matrices into
3-D banks and overlaps reduce-scatter, batched NS5 and all-gather. It changes speed, not the
update (#549's ablation: ±0.0000 bpb), so it is not a separate optimizer here; the sharding
above is the same maths. (Its one side effect in the seeds — banked weights bypassing late-QAT
fake-quant — is a bug we do not reproduce.) Decoupled weight decay W ← W·(1 − lr_t·wd) is the
11L lineage's Muon WD (0.04).
"""


import torch
import torch.distributed as dist

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz5(grad: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximately orthogonalise a matrix with the quintic Newton–Schulz iteration.

    Runs in bf16 on CUDA (as the contest does) and in fp32 elsewhere, where bf16 matmuls are
    slow and gain nothing.
    """
    a, b, c = NS_COEFFS
    dtype = torch.bfloat16 if grad.is_cuda else torch.float32
    x = grad.to(dtype)
    x = x / (x.norm() + eps)
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        poly = b * gram + c * gram @ gram
        x = a * x + poly @ x
    return x.T if transposed else x


_compiled_ns5 = None


def orthogonalize(grad: torch.Tensor, steps: int) -> torch.Tensor:
    """NS5, compiled on CUDA (fuses the scalar-matrix arithmetic between the matmuls); eager on
    CPU, where compiling it for every matrix shape costs more than it saves."""
    global _compiled_ns5
    if not grad.is_cuda:
        return newton_schulz5(grad, steps)
    if _compiled_ns5 is None:
        _compiled_ns5 = torch.compile(newton_schulz5)
    return _compiled_ns5(grad, steps)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.95, backend_steps: int = 5,
                 nesterov: bool = True, weight_decay: float = 0.0) -> None:
        defaults = dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov,
                        weight_decay=weight_decay)
        super().__init__(params, defaults)
        # Planner only: orthogonalise rank 0's share of an N-rank run in one process, so one GPU
        # times the per-rank work of N (the other ranks' matrices get no update: timing, not training).
        self.emulate_world_size = 1

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if distributed else self.emulate_world_size
        rank = dist.get_rank() if distributed else 0
        for group in self.param_groups:
            params = [p for p in group["params"]]
            if not params:
                continue
            lr, mu = group["lr"], group["momentum"]
            flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device,
                               dtype=torch.bfloat16 if params[0].is_cuda else torch.float32)
            offset = 0
            for i, p in enumerate(params):
                n = p.numel()
                if i % world == rank and p.grad is not None:
                    g = p.grad
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(g)
                    buf = state["momentum_buffer"]
                    buf.mul_(mu).add_(g)
                    if group["nesterov"]:
                        g = g.add(buf, alpha=mu)
                    update = orthogonalize(g, group["backend_steps"])
                    update = update * max(1.0, update.size(0) / update.size(1)) ** 0.5
                    flat[offset : offset + n] = update.reshape(-1)
                offset += n
            if distributed and world > 1:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            wd = group["weight_decay"]
            for p in params:
                n = p.numel()
                if wd:
                    p.mul_(1.0 - lr * wd)
                p.add_(flat[offset : offset + n].view_as(p).to(p.dtype), alpha=-lr)
                offset += n
        return None

# ---------------------------------------------------------------------------- pgolf/train/optim/groups.py
"""The baseline's optimizer split (techniques.md §2.2), extended to add-ons and weight decay.

- Muon: every 2-D matrix inside the blocks that is not a control tensor;
- Adam (β 0.9/0.95; AdamW with decoupled decay when `adam_weight_decay > 0`): the tied embedding
  at `tied_embed_lr` (or the untied embedding at `embed_lr` and head at `head_lr`), and all
  vectors/scalars/control tensors at `scalar_lr`;
- add-on parameters go where their add-on's `optim_group` says ("embed", "scalar" or "matrix").
Each param group remembers its `base_lr`; the schedule multiplies it every step.
"""


import torch
from torch import nn



def split_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"matrix": [], "scalar": [], "embed": [], "head": []}
    addons = getattr(model, "addons", {})
    for name, p in model.named_parameters():
        if name.startswith("tok_emb"):
            groups["embed"].append((name, p))
        elif name.startswith("lm_head"):
            groups["head"].append((name, p))
        elif name.startswith("addons."):
            _, addon, rest = name.split(".", 2)
            groups[addons[addon].optim_group(rest)].append((name, p))
        elif name.startswith("blocks.") and p.ndim == 2 and not is_control(name):
            groups["matrix"].append((name, p))
        else:
            groups["scalar"].append((name, p))
    return groups


def build_optimizers(model: nn.Module, cfg: TrainConfig, tied: bool) -> list[torch.optim.Optimizer]:
    groups = split_parameters(model)
    fused = next(model.parameters()).is_cuda
    adam_groups = [
        {"params": [p for _, p in groups["embed"]], "lr": cfg.tied_embed_lr if tied else cfg.embed_lr},
        {"params": [p for _, p in groups["scalar"]], "lr": cfg.scalar_lr},
    ]
    if groups["head"]:
        adam_groups.append({"params": [p for _, p in groups["head"]], "lr": cfg.head_lr})
    adam_groups = [g for g in adam_groups if g["params"]]
    adam_kwargs = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=fused)
    if cfg.adam_weight_decay > 0:
        adam = torch.optim.AdamW(adam_groups, weight_decay=cfg.adam_weight_decay, **adam_kwargs)
    else:
        adam = torch.optim.Adam(adam_groups, **adam_kwargs)
    muon = Muon([p for _, p in groups["matrix"]], lr=cfg.matrix_lr, momentum=cfg.muon_momentum,
                backend_steps=cfg.muon_backend_steps, weight_decay=cfg.muon_weight_decay)
    optimizers: list[torch.optim.Optimizer] = [adam, muon]
    for opt in optimizers:
        for g in opt.param_groups:
            g["base_lr"] = g["lr"]
    return optimizers

# ---------------------------------------------------------------------------- pgolf/train/runlog.py
"""Run logging: contest-style text lines (train.log), JSON-lines metrics, a terminal progress bar.

Only rank 0 writes. Log lines go to stderr so that `--json` keeps stdout for the result object.
"""


import json
import sys
import time
from pathlib import Path

from tqdm import tqdm


class RunLog:
    def __init__(self, run_dir: Path | None, enabled: bool, progress: bool | None = None,
                 total_seconds: float = 0.0, echo: bool = True) -> None:
        self.enabled = enabled
        self.echo = echo
        self.text = open(run_dir / "train.log", "a", encoding="utf-8") if enabled and run_dir else None
        self.metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if enabled and run_dir else None
        show = sys.stderr.isatty() if progress is None else progress
        self.bar = None
        if enabled and show and total_seconds > 0:
            self.bar = tqdm(total=round(total_seconds), unit="s", desc="train", file=sys.stderr,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s {postfix}")

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.text:
            self.text.write(text + "\n")
            self.text.flush()
        if self.echo:
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)

    def metric(self, **values) -> None:
        if self.enabled and self.metrics:
            values.setdefault("time", time.time())
            self.metrics.write(json.dumps(values) + "\n")
            self.metrics.flush()

    def progress(self, seconds: float, **postfix) -> None:
        if self.bar is not None:
            self.bar.n = min(seconds, self.bar.total)
            self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for f in (self.text, self.metrics):
            if f:
                f.close()

# ---------------------------------------------------------------------------- pgolf/quant/packing.py
"""Bit-packing of signed integers, so an int6 weight costs 6 bits (4 values in 3 bytes) and an
int5 weight 5 bits (8 values in 5 bytes) before the compressor.

Values in [−2^(b−1), 2^(b−1)) are offset to unsigned, their b low bits laid out little-endian one
after another, and the bit stream cut into bytes. Written with numpy's packbits/unpackbits: no
library packs arbitrary bit widths, and this is exact and vectorised.
"""


import numpy as np


def pack_signed(q: np.ndarray, bits: int) -> np.ndarray:
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    flat = np.asarray(q, dtype=np.int16).reshape(-1)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise ValueError(f"values outside the signed {bits}-bit range [{lo}, {hi}]")
    u = (flat - lo).astype(np.uint8)
    stream = np.unpackbits(u[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(stream.reshape(-1), bitorder="little")


def unpack_signed(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    stream = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")[: count * bits]
    if stream.size != count * bits:
        raise ValueError(f"packed buffer holds {stream.size} bits, {count * bits} needed")
    u = np.packbits(stream.reshape(count, bits), axis=1, bitorder="little").reshape(-1)
    return u.astype(np.int16) - (1 << (bits - 1))


def packed_nbytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8

# ---------------------------------------------------------------------------- pgolf/quant/mixed.py
"""The seeds' mixed-precision policy (techniques.md §5.2), shared by the per-row quantizers:

- non-float tensors stored raw;
- tensors of ≤ 65,536 elements kept: fp32 for control tensors, fp16 otherwise;
- the token embedding (it is also the output head) at `pack.embedding_bits` (8);
- every other matrix at the quantizer's bits (int6 / int5 / int8), per row, one fp16 scale a row;
  tensors of other ranks are flattened to (first dim, rest) rows.
Below 8 bits the integers are bit-packed (`int_per_row_packed`), so int6 costs 6 bits a weight.
"""


from typing import Callable

import numpy as np
import torch


KEEP_FLOAT_MAX_NUMEL = 65_536
# (matrix (rows, cols) float32, bits, tensor name) -> (integers, per-row fp16 scales)
MatrixQuantizer = Callable[[torch.Tensor, int, str], tuple[torch.Tensor, torch.Tensor]]


def qmax_for(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def quantize_rows_with_clip(w: torch.Tensor, clip: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row grid of ±qmax steps spanning ±clip_r; scales rounded to fp16 first so the
    integers are exactly those the stored scales decode."""
    qmax = qmax_for(bits)
    scale = (clip / qmax).clamp_min(1e-8).half()
    s = scale.float()[:, None]
    q = torch.clamp(torch.round(w.clamp(-clip[:, None], clip[:, None]) / s), -qmax, qmax)
    return q.to(torch.int16), scale


def passthrough(name: str, t: torch.Tensor) -> EncodedTensor | None:
    """Tensors every policy stores unquantized: non-float ones raw; small floats as fp16
    (control tensors fp32). None for a tensor the quantizer must handle."""
    shape = tuple(t.shape)
    if not t.is_floating_point():
        return EncodedTensor(name, shape, "raw", {"data": t.numpy()}, dtype=str(t.dtype).removeprefix("torch."))
    if t.numel() <= KEEP_FLOAT_MAX_NUMEL:
        keep = torch.float32 if is_control(name) else torch.float16
        return EncodedTensor(name, shape, "float", {"data": t.to(keep).numpy()})
    return None


def encode_mixed(state: dict[str, torch.Tensor], cfg: PackConfig, matrix_bits: int,
                 quantize_matrix: MatrixQuantizer) -> list[EncodedTensor]:
    out = []
    for name, t in state.items():
        t = t.detach().cpu()
        shape = tuple(t.shape)
        kept = passthrough(name, t)
        if kept is not None:
            out.append(kept)
            continue
        bits = cfg.embedding_bits if name.startswith(("tok_emb", "lm_head")) else matrix_bits
        w = t.float().reshape(t.shape[0], -1)
        q, scale = quantize_matrix(w, bits, name)
        if bits == 8:
            out.append(EncodedTensor(name, shape, "int_per_row",
                                     {"q": q.to(torch.int8).numpy(), "scale": scale.numpy()}))
        else:
            out.append(EncodedTensor(name, shape, "int_per_row_packed",
                                     {"q": pack_signed(q.numpy(), bits), "scale": scale.numpy(),
                                      "bits": np.array([bits], dtype=np.uint8)}))
    return out

# ---------------------------------------------------------------------------- pgolf/train/qat.py
"""Training-side quantization awareness: late QAT with a straight-through estimator, and CROWN-Q.

Late QAT (techniques.md §5.6): once the LR multiplier drops below `qat_start_lr_scale` (0.15 in
#549/#731/#1313/#1488/#1207, 0.5 in #700), every quantizable matrix is used fake-quantized in the
forward pass, W_q = s·clamp(round(W/s), ±qmax) with the row-max scale s = max|W_r|/qmax, and the
gradient flows as if W_q = W (W + stopgrad(W_q − W)). The switch is verified: `enable_qat`
returns how far the forward weights moved, and the loop logs it (the 2026-03-21 record's QAT
never ran because a compiled graph constant-folded its flag).

CROWN-Q (PR #693, #700; §5.7): while QAT is active, add
P = (λ/12)·Σ_layers mean_{r,j}(W_rj² · δ_r²), δ_r = stopgrad(max_j |W_rj|)/qmax,
the expected rounding-noise energy with W² as a curvature proxy.
"""


import torch
from torch import nn




def quantizable(model: nn.Module) -> list[Linear]:
    return [m for m in model.modules() if isinstance(m, Linear) and m.weight.numel() > KEEP_FLOAT_MAX_NUMEL]


def fake_quant(bits: int):
    qmax = (1 << (bits - 1)) - 1

    def transform(w: torch.Tensor) -> torch.Tensor:
        scale = (w.detach().abs().amax(dim=1, keepdim=True) / qmax).clamp_min(1e-8)
        wq = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
        return w + (wq - w).detach()

    return transform


@torch.no_grad()
def enable_qat(model: nn.Module, bits: int) -> float:
    """Switch fake quantization on; return the mean |W_q − W| it introduces (> 0 proves it acts)."""
    layers = quantizable(model)
    transform = fake_quant(bits)
    moved = 0.0
    for m in layers:
        m.weight_transform = transform
        moved += (transform(m.weight) - m.weight).abs().mean().item()
    return moved / max(len(layers), 1)


def disable_qat(model: nn.Module) -> None:
    for m in quantizable(model):
        m.weight_transform = None


def crown_q_penalty(model: nn.Module, lam: float, qmax: int) -> torch.Tensor:
    terms = []
    for m in quantizable(model):
        w = m.weight
        delta = w.detach().abs().amax(dim=1, keepdim=True) / qmax
        terms.append((w.square() * delta.square()).mean())
    if not terms:
        return torch.zeros(())
    return (lam / 12.0) * torch.stack(terms).sum()

# ---------------------------------------------------------------------------- pgolf/quant/gptq.py
"""Full-Hessian GPTQ (Frantar et al., ICLR 2023), the maths only (techniques.md §5.4).

One `GPTQ` object per linear layer: `add_batch(x)` accumulates H = XᵀX / N from the layer's
inputs (calibration activations), then `quantize(w, bits)` solves the layer column by column:

1. columns with diag(H) = 0 get H_ii = 1 and are zeroed; H += damp·mean(diag H)·I;
2. optional act-order: columns permuted by descending diag(H) (#1019/#1207; #700 sorted
   ascending, a deviation selectable with act_order="ascending");
3. U = upper Cholesky factor of H⁻¹;
4. per-row scales are fixed first (from the weights, as RTN or the GPTQ-lite clip search);
5. in blocks of `block_size` columns: q_j = clamp(round(w_j/s), ±qmax), e_j = (w_j − s·q_j)/U_jj,
   W[:, j+1:block] −= e_j·U[j, j+1:block]; after each block the error is propagated to the
   remaining columns with one matmul. Columns are un-permuted at the end.

This equals sequential optimal-brain-surgeon updates with the Schur-complemented inverse
Hessian (the test checks it against that plain reference). Calibration data and where it may
come from are the caller's concern (pgolf.quant.calibration).
"""


import torch



class GPTQ:
    def __init__(self, columns: int, device: torch.device | str = "cpu") -> None:
        self.hessian = torch.zeros(columns, columns, dtype=torch.float64, device=device)
        self.samples = 0

    @torch.no_grad()
    def add_batch(self, x: torch.Tensor) -> None:
        """x: (..., columns) layer inputs; the running mean of xxᵀ is kept in float64."""
        x = x.reshape(-1, x.size(-1)).to(self.hessian.dtype)
        n = x.size(0)
        total = self.samples + n
        self.hessian.mul_(self.samples / total).add_(x.T @ x, alpha=1.0 / total)
        self.samples = total

    @torch.no_grad()
    def quantize(self, w: torch.Tensor, scale: torch.Tensor, bits: int, block_size: int = 128,
                 damp: float = 0.01, act_order: str = "descending") -> torch.Tensor:
        """Integer weights (rows, cols) on the per-row grid `scale` (rows,), error-compensated."""
        if act_order not in ("none", "descending", "ascending"):
            raise ValueError(f"act_order must be none, descending or ascending, got {act_order!r}")
        qmax = qmax_for(bits)
        W = w.detach().to(torch.float64).clone()
        H = self.hessian.clone()
        cols = W.size(1)
        dead = torch.diag(H) == 0
        H[dead, dead] = 1.0
        W[:, dead] = 0.0
        perm = None
        if act_order != "none":
            perm = torch.argsort(torch.diag(H), descending=act_order == "descending")
            W, H = W[:, perm], H[perm][:, perm]
        H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=H.dtype, device=H.device)
        U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
        s = scale.to(torch.float64)
        Q = torch.zeros_like(W)
        for i1 in range(0, cols, block_size):
            i2 = min(i1 + block_size, cols)
            W1 = W[:, i1:i2].clone()
            E1 = torch.zeros_like(W1)
            U1 = U[i1:i2, i1:i2]
            for i in range(i2 - i1):
                col = W1[:, i]
                q = torch.clamp(torch.round(col / s), -qmax, qmax)
                Q[:, i1 + i] = q
                err = (col - q * s) / U1[i, i]
                W1[:, i:] -= err[:, None] * U1[i, i:][None, :]
                E1[:, i] = err
            W[:, i2:] -= E1 @ U[i1:i2, i2:]
        if perm is not None:
            Q = Q[:, torch.argsort(perm)]
        return Q.to(torch.int16)


def _gptq_quantizer(bits: int):
    """Mixed-precision policy with full GPTQ on every calibrated matrix. Per-row scales come
    from the GPTQ-lite clip search first (as #1019/#1207 fix scales before the solve); a matrix
    without a Hessian (no calibration seen) falls back to that clip search alone."""
    pass
    pass
    pass

    def quantize(state, cfg, hessians=None):
        if not hessians:
            raise PgolfError(f"gptq-int{bits} needs calibration Hessians; run `pgolf calibrate RUN` first")

        def matrix(w, b, name):
            q, scale = clip_search_matrix(w, b, cfg.clip_search)
            g = hessians.get(name)
            if g is None or g.hessian.size(0) != w.size(1):
                return q, scale
            return g.quantize(w, scale.float(), b, act_order=cfg.gptq_act_order), scale

        return encode_mixed(state, cfg, bits, matrix)

    return quantize


def _register() -> None:
    pass

    for bits in (8, 6, 5):
        QUANTIZERS.register(f"gptq-int{bits}")(_gptq_quantizer(bits))


_register()

# ---------------------------------------------------------------------------- pgolf/quant/calibration.py
"""Calibration for full-Hessian GPTQ: where the activations come from, and the rule on that.

The contest's rule (legality.md, techniques.md §5.4): GPTQ may calibrate on *training* data —
and then the Hessian collection must finish inside the training wallclock cap — or on sequences
the model generates itself after training (AR self-calibration, #1019), and never on
validation tokens. `calibration_batches` refuses a validation shard or split with an error that
says why; the Hessians are saved with their provenance (source, shards, sequences, seconds) and
the artifact records it.
"""


import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn


HESSIANS_NAME = "hessians.safetensors"
PROVENANCE_NAME = "calibration.json"
VAL_RULE = ("GPTQ calibration may not read validation data (contest rule: the validation set is "
            "the test set; calibrate on training shards inside the training cap, or on "
            "self-generated sequences)")


def train_calibration_batches(data_dir: str | Path, sequences: int, seq_len: int,
                              batch: int = 8) -> tuple[Iterator[torch.Tensor], dict]:
    """The first `sequences` windows of the training stream; a validation shard is refused."""
    path = Path(data_dir)
    if path.is_file() or "fineweb_val_" in path.name:
        raise DataError(f"{path}: {VAL_RULE}")
    stream = TokenStream(path, "train")  # reads fineweb_train_* only
    provenance = {"source": "train", "shards": [str(p) for p in stream.paths], "sequences": sequences,
                  "seq_len": seq_len}

    def gen() -> Iterator[torch.Tensor]:
        left = sequences
        while left > 0:
            n = min(batch, left)
            yield torch.from_numpy(stream.take(n * seq_len).astype(np.int64)).view(n, seq_len)
            left -= n

    return gen(), provenance


@torch.no_grad()
def self_generated_batches(model: nn.Module, sequences: int, seq_len: int, vocab_size: int,
                           temperature: float = 0.8, seed: int = 0, batch: int = 8) -> tuple[Iterator[torch.Tensor], dict]:
    """AR self-calibration (#1019): the model samples its own sequences (first token uniform,
    fixed seed, temperature 0.8); no data is read."""
    provenance = {"source": "self-generated", "sequences": sequences, "seq_len": seq_len,
                  "temperature": temperature, "seed": seed}
    device = next(model.parameters()).device

    def gen() -> Iterator[torch.Tensor]:
        g = torch.Generator(device="cpu").manual_seed(seed)
        left = sequences
        while left > 0:
            n = min(batch, left)
            ids = torch.randint(0, vocab_size, (n, 1), generator=g).to(device)
            for _ in range(seq_len - 1):
                logits = model(ids)[:, -1].float() / temperature
                nxt = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=g).to(device)
                ids = torch.cat((ids, nxt), dim=1)
            yield ids
            left -= n

    return gen(), provenance


def quantizable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Linear layers whose weights the mixed-precision policy quantizes as matrices."""
    return {f"{name}.weight": m for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.weight.numel() > KEEP_FLOAT_MAX_NUMEL}


@torch.no_grad()
def collect_hessians(model: nn.Module, batches: Iterator[torch.Tensor]) -> dict[str, GPTQ]:
    layers = quantizable_linears(model)
    gptqs = {name: GPTQ(m.in_features) for name, m in layers.items()}
    handles = [m.register_forward_hook(lambda mod, inp, out, g=gptqs[name]: g.add_batch(inp[0]))
               for name, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        for ids in batches:
            model(ids.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return gptqs


def calibrate(model: nn.Module, batches: Iterator[torch.Tensor], provenance: dict, run_dir: str | Path) -> dict:
    t0 = time.perf_counter()
    gptqs = collect_hessians(model, batches)
    provenance = {**provenance, "seconds": time.perf_counter() - t0, "layers": len(gptqs)}
    run_dir = Path(run_dir)
    save_file({name: g.hessian.contiguous() for name, g in gptqs.items()}, str(run_dir / HESSIANS_NAME))
    (run_dir / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def load_hessians(run_dir: str | Path) -> tuple[dict[str, GPTQ], dict]:
    run_dir = Path(run_dir)
    path = run_dir / HESSIANS_NAME
    if not path.is_file():
        raise PgolfError(
            f"{run_dir}: no GPTQ Hessians ({HESSIANS_NAME}); run `pgolf calibrate {run_dir}` first"
        )
    gptqs = {}
    for name, h in load_file(str(path)).items():
        g = GPTQ(h.size(0))
        g.hessian = h
        gptqs[name] = g
    return gptqs, json.loads((run_dir / PROVENANCE_NAME).read_text())

# ---------------------------------------------------------------------------- pgolf/train/schedule.py
"""Learning-rate multiplier and Muon momentum warm-up of the baseline (techniques.md §2.3).

The LR is constant, then decays linearly to zero exactly when the wallclock cap is reached:
the warmdown lasts `warmdown_iters` steps at the measured average step time (or, with
`warmdown_fraction`, that fraction of the cap). Without a cap it is step-based.
"""




def training_cap_ms(cfg: TrainConfig) -> float:
    """The clock the optimizer steps may use: the cap minus any calibration reserve."""
    return max(cfg.max_wallclock_seconds - cfg.gptq_reserve_seconds, 0.0) * 1000.0


def lr_multiplier(cfg: TrainConfig, step: int, elapsed_ms: float) -> float:
    cap_ms = training_cap_ms(cfg)
    if cfg.max_wallclock_seconds <= 0:
        if cfg.warmdown_iters <= 0:
            return 1.0
        start = max(cfg.iterations - cfg.warmdown_iters, 0)
        if step < start:
            return 1.0
        return max((cfg.iterations - step) / cfg.warmdown_iters, 0.0)
    if cfg.warmdown_fraction > 0:
        warmdown_ms = cfg.warmdown_fraction * cap_ms
    elif cfg.warmdown_iters > 0:
        warmdown_ms = cfg.warmdown_iters * (elapsed_ms / max(step, 1))
    else:
        return 1.0
    remaining_ms = max(cap_ms - elapsed_ms, 0.0)
    if remaining_ms <= warmdown_ms:
        return remaining_ms / max(warmdown_ms, 1e-9)
    return 1.0


def muon_momentum(cfg: TrainConfig, step: int) -> float:
    if cfg.muon_momentum_warmup_steps <= 0:
        return cfg.muon_momentum
    frac = min(step / cfg.muon_momentum_warmup_steps, 1.0)
    return (1 - frac) * cfg.muon_momentum_warmup_start + frac * cfg.muon_momentum

# ---------------------------------------------------------------------------- pgolf/train/loop.py
"""The training loop of the naive baseline (techniques.md §2.2–2.3), generalised by the preset.

- Compile warm-up: `warmup_steps` real steps trigger compilation, then the initial weights,
  optimizer states and data stream are restored (this is not an LR warm-up).
- The clock counts only training steps (warm-up and periodic validation are excluded); the run
  stops after the step at which it reaches `max_wallclock_seconds` (the max over ranks), and
  the LR reaches zero exactly there.
- `grad_accum` micro-batches per step are split across ranks, so the global batch and its order
  are the same for any number of ranks.
"""


import copy
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP



def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def load_eval_inputs(data_dir, tokenizer, vocab_size: int, device) -> tuple[np.ndarray, TorchByteTables, Path]:
    """Validation tokens and byte tables, with the vocab checks the contest script asserts."""
    tok_path = resolve_tokenizer(data_dir, tokenizer)
    sp = load_tokenizer(tok_path)
    if sp.vocab_size() != vocab_size:
        raise DataError(
            f"{tok_path}: tokenizer vocab {sp.vocab_size()} != model vocab {vocab_size}; "
            "use the tokenizer the shards were built with and a preset of the same vocab"
        )
    val = load_split(data_dir, "val")
    check_vocab(val, vocab_size, f"{data_dir} (val split)")
    tables = TorchByteTables(build_byte_tables(sp, vocab_size), device)
    return val, tables, tok_path


def want_compile(mode: str, runtime: Runtime) -> bool:
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"train.compile must be auto, on or off, got {mode!r}")
    return mode == "on" or (mode == "auto" and runtime.device.type == "cuda")


def train(preset: Preset, data_dir: str | Path, run_dir: str | Path | None, runtime: Runtime,
          tokenizer: str | Path | None = None, progress: bool | None = None,
          emulate_world_size: int = 1) -> dict:
    """Train `preset` on the shards in `data_dir`; write checkpoint and logs to `run_dir`.

    `emulate_world_size` is for the budget planner: one process does one rank's Muon share of an
    N-rank run (with the preset already cut to one rank's batch), to time it; the weights it
    produces are not a valid training run.
    """
    cfg, mcfg = preset.train, preset.model
    micro_per_rank, rem = divmod(cfg.grad_accum, runtime.world_size)
    if micro_per_rank < 1 or rem:
        raise ConfigError(
            f"train.grad_accum {cfg.grad_accum} must be a positive multiple of the world size {runtime.world_size}"
        )
    if cfg.tokens_per_step % (cfg.grad_accum * cfg.seq_len):
        raise ConfigError(
            f"train.tokens_per_step {cfg.tokens_per_step} must be a multiple of grad_accum x seq_len "
            f"= {cfg.grad_accum * cfg.seq_len}"
        )
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    val_tokens, tables, tok_path = load_eval_inputs(data_dir, tokenizer, mcfg.vocab_size, runtime.device)

    seed_everything(cfg.seed)
    model = GPT(mcfg).to(runtime.device)
    n_params = count_parameters(model)
    optimizers = build_optimizers(model, cfg, tied=mcfg.tie_embeddings)
    muon = next(o for o in optimizers if isinstance(o, Muon))
    muon.emulate_world_size = emulate_world_size
    compiled = compile_module(model) if want_compile(cfg.compile, runtime) else model
    train_model = DDP(compiled, device_ids=[runtime.local_rank] if runtime.device.type == "cuda" else None,
                      broadcast_buffers=False, gradient_as_bucket_view=True) if runtime.distributed else compiled
    loader = DistributedTokenLoader(data_dir, runtime.rank, runtime.world_size, runtime.device,
                                    vocab_size=mcfg.vocab_size)

    log = RunLog(run_dir, runtime.is_main, progress, cfg.max_wallclock_seconds)
    log.line(f"preset:{preset.name} model_params:{n_params} world_size:{runtime.world_size} "
             f"grad_accum_steps:{micro_per_rank} device:{runtime.device}")
    log.line(f"train_tokens_per_step:{cfg.tokens_per_step} seq_len:{cfg.seq_len} "
             f"iterations:{cfg.iterations} max_wallclock_seconds:{cfg.max_wallclock_seconds:.3f} seed:{cfg.seed}")
    log.line(f"val_loader tokens:{val_tokens.size - 1} tokenizer:{tok_path}")

    qat_on = False

    def run_step(step: int, scale: float) -> torch.Tensor:
        nonlocal qat_on
        if cfg.qat_bits and not qat_on and scale < cfg.qat_start_lr_scale:
            moved = enable_qat(model, cfg.qat_bits)
            qat_on = True
            log.line(f"late_qat:on step:{step} bits:{cfg.qat_bits} lr_scale:{scale:.3f} "
                     f"mean_weight_change:{moved:.3e}")
            log.metric(kind="qat", step=step, bits=cfg.qat_bits, mean_weight_change=moved)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=runtime.device)
        for micro in range(micro_per_rank):
            x, y = loader.next_batch(cfg.tokens_per_step, cfg.seq_len, micro_per_rank)
            if runtime.distributed:
                train_model.require_backward_grad_sync = micro == micro_per_rank - 1
            with autocast_context(runtime):
                loss = train_model(x, y)
            objective = loss
            if qat_on and cfg.crown_q_lambda > 0:
                objective = loss + crown_q_penalty(model, cfg.crown_q_lambda, cfg.crown_q_qmax)
            (objective / micro_per_rank).backward()
            total += loss.detach()
        for g in muon.param_groups:
            g["momentum"] = muon_momentum(cfg, step)
        for opt in optimizers:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * scale
        if cfg.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
        for opt in optimizers:
            opt.step()
        return total / micro_per_rank

    if cfg.warmup_steps > 0:
        # Compile warm-up: run real steps, then restore the initial state and data position.
        initial_model = copy.deepcopy(model.state_dict())
        initial_opts = [copy.deepcopy(o.state_dict()) for o in optimizers]
        stream_state = loader.stream.state()
        for w in range(cfg.warmup_steps):
            run_step(0, 1.0)
            log.line(f"warmup_step:{w + 1}/{cfg.warmup_steps}")
        model.load_state_dict(initial_model)
        for o, s in zip(optimizers, initial_opts):
            o.load_state_dict(s)
        loader.stream.load_state(stream_state)
        disable_qat(model)
        qat_on = False
    averager = build_averager(model, cfg)

    def validate() -> tuple[float, float]:
        # On CPU a second graph for the eval shapes costs more compile time than it saves.
        scorer = compiled if runtime.device.type == "cuda" else model
        totals = evaluate_standard(scorer, val_tokens, tables, cfg.seq_len, preset.eval.batch_tokens,
                                   runtime, limit=cfg.val_tokens_limit)
        return totals.loss, totals.bpb

    calibration: dict | None = None

    def calibrate_in_cap() -> dict:
        """Collect GPTQ Hessians on training data with the training clock running (rank 0)."""
        clock.pause()
        prov: dict = {}
        if runtime.is_main and run_dir is not None:
            batches, prov = train_calibration_batches(data_dir, cfg.gptq_calibration_sequences, cfg.seq_len)
            prov = calibrate(model, batches, prov, run_dir)
            clock.add(1000 * prov["seconds"])
            prov["train_time_ms_at_end"] = clock.elapsed_ms
            prov["within_cap"] = clock.elapsed_ms <= 1000 * cfg.max_wallclock_seconds or cfg.max_wallclock_seconds <= 0
            write_json(Path(run_dir) / PROVENANCE_NAME, prov)  # the artifact will carry this record
            log.line(f"gptq_calibration sequences:{cfg.gptq_calibration_sequences} seconds:{prov['seconds']:.2f} "
                     f"train_time:{clock.elapsed_ms:.0f}ms within_cap:{prov['within_cap']}")
            if not prov["within_cap"]:
                log.line("warning: GPTQ calibration ended after the training cap; raise train.gptq_reserve_seconds")
        if runtime.distributed:
            torch.distributed.barrier()
        clock.resume()
        return prov

    clock = TrainingClock(runtime)
    stop_after: int | None = None
    step = 0
    val_loss = val_bpb = float("nan")
    clock.resume()
    while True:
        last = step == cfg.iterations or (stop_after is not None and step >= stop_after)
        if last:
            disable_qat(model)  # score and save the float weights the exporter will quantize
            averager.apply_to(model)  # final weights = the average (EMA/SWA), if any
            if cfg.gptq_calibration_sequences > 0 and calibration is None:
                calibration = calibrate_in_cap()
        if last or (cfg.val_every > 0 and step % cfg.val_every == 0):
            training_ms = clock.pause()
            val_loss, val_bpb = validate()
            log.line(f"step:{step}/{cfg.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
                     f"train_time:{training_ms:.0f}ms step_avg:{training_ms / max(step, 1):.2f}ms")
            log.metric(kind="val", step=step, val_loss=val_loss, val_bpb=val_bpb, train_time_ms=training_ms)
            clock.resume()
        if last:
            break
        scale = lr_multiplier(cfg, step, clock.now_ms())
        loss = run_step(step, scale)
        step += 1
        averager.update(model, step, scale)
        approx_ms = clock.step_launched()
        if cfg.train_log_every > 0 and (step <= 10 or step % cfg.train_log_every == 0):
            if runtime.distributed:  # log the global batch's loss, not rank 0's share
                loss = all_reduce_sum_(loss.clone()) / runtime.world_size
            train_loss = float(loss)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"train_loss became {train_loss} at step {step}; lower the learning rates")
            log.line(f"step:{step}/{cfg.iterations} train_loss:{train_loss:.4f} "
                     f"train_time:{approx_ms:.0f}ms step_avg:{approx_ms / step:.2f}ms")
            log.metric(kind="train", step=step, train_loss=train_loss, train_time_ms=approx_ms, lr_scale=scale)
            log.progress(approx_ms / 1000, loss=f"{train_loss:.3f}")
        if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and run_dir and runtime.is_main:
            save_checkpoint(run_dir, model, {"step": step, "complete": False, "preset": preset.to_dict()})
        if stop_after is None and cfg.max_wallclock_seconds > 0:
            if clock.agree(approx_ms >= training_cap_ms(cfg)):
                stop_after = step
    training_ms = clock.elapsed_ms
    log.line(f"final val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} steps:{step} train_time:{training_ms:.0f}ms")
    summary = {
        "preset": preset.name,
        "steps": step,
        "train_time_ms": training_ms,
        "step_avg_ms": training_ms / max(step, 1),
        "tokens_seen": step * cfg.tokens_per_step,
        "model_params": n_params,
        "val_loss": val_loss,
        "val_bpb": val_bpb,
        "val_tokens_scored_limit": cfg.val_tokens_limit,
        "world_size": runtime.world_size,
        "device": str(runtime.device),
        "calibration": calibration,
    }
    if run_dir is not None and runtime.is_main:
        manifest = read_manifest(data_dir) or {}
        state = {
            "complete": True,
            "step": step,
            "preset": preset.to_dict(),
            "summary": summary,
            "data": {"dir": str(Path(data_dir).resolve()), "tokenizer": str(Path(tok_path).resolve()),
                     "tokenizer_sha256": file_sha256(tok_path),
                     "train_shards": [str(p) for p in loader.stream.paths],
                     "manifest_split_rule": manifest.get("split_rule")},
            "train_config": asdict(cfg),
        }
        save_checkpoint(run_dir, model, state)
    log.close()
    return summary

# ---------------------------------------------------------------------------- pgolf/evaluate/artifact_eval.py
"""`pgolf eval ARTIFACT`: score the round-tripped (quantized, decoded) model with the chosen
evaluation methods in one pass (see `pgolf.evaluate.pipeline`)."""


from pathlib import Path



def resolve_methods(spec: str | list[str] | None, preset) -> list[str]:
    """"standard" by default; "preset" = the preset's own `evaluation.methods`."""
    if spec in (None, "", []):
        return ["standard"]
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    if names == ["preset"]:
        return list(preset.evaluation.get("methods") or ["standard"])
    return [n.strip() for n in names if n.strip()]


def evaluate_artifact(path: str | Path, data_dir: str | Path, runtime: Runtime,
                      tokenizer: str | Path | None = None, seq_len: int | None = None,
                      limit: int = 0, methods: str | list[str] | None = None,
                      overrides: list[str] | None = None, time_budget: float = 0.0,
                      strict_budget: bool = False) -> dict:
    artifact = read_artifact(path)
    preset = preset_from_dict(artifact.preset)
    extra = list(overrides or []) + ([f"eval.seq_len={seq_len}"] if seq_len else [])
    if extra:
        preset = with_overrides(preset, extra)
    names = resolve_methods(methods, preset)
    registry = load_methods(names)
    val, tables, tok_path = load_eval_inputs(data_dir, tokenizer, preset.model.vocab_size, runtime.device)
    warnings = []
    trained_sha = artifact.meta.get("data", {}).get("tokenizer_sha256")
    if trained_sha and trained_sha != file_sha256(tok_path):
        warnings.append(f"{tok_path} differs from the tokenizer the model was trained with")
    model = model_from_artifact(artifact, runtime.device)
    if runtime.device.type == "cuda" and all(registry.get(n).role in ("windows", "mix") for n in names):
        model = compile_module(model)  # weight-changing methods run eager (they deep-copy the model)
    result = run_pipeline(model, val, tables, preset, runtime, names, limit=limit,
                          time_budget=time_budget, strict_budget=strict_budget)
    out = result.as_dict()
    warnings += out.pop("warnings")
    illegal = [m["method"] for m in out["methods"] if not m["legal_by_design"]]
    if illegal:
        warnings.append(f"not legal under the contest's rules (by design): {', '.join(illegal)}")
    return {
        "artifact": str(path),
        "method": ",".join(names),
        **out,
        "config": {"seq_len": preset.eval.seq_len, "limit": limit, "tokenizer": str(tok_path),
                   "data_dir": str(data_dir), "quant": artifact.quant, "overrides": extra},
        "warnings": warnings,
    }

# ---------------------------------------------------------------------------- pgolf/evaluate/methods/__init__.py
"""Evaluation-time methods; each module registers itself in `pgolf.evaluate.methods.base.METHODS`.

MODULE_OF names the module defining each method, so a run (and an exported submission) imports
only the methods it uses — the illegal fixtures never enter a submission's code.
"""

MODULE_OF = {
    "standard": "standard", "sliding": "sliding", "ttt": "ttt", "slot": "slot", "slot-causal": "slot",
    "hedge": "hedge", "hedge-normalized": "hedge",
    "illegal-prequant-ttt": "illegal_ttt", "illegal-train-then-score-ttt": "illegal_ttt",
    "illegal-ngram-target-key": "illegal_mixers", "illegal-target-only-norm": "illegal_mixers",
}

# ---------------------------------------------------------------------------- pgolf/evaluate/methods/adaptation.py
"""Gradient steps on already-chosen validation tokens — the shared engine of score-first TTT and of
the illegal fixtures that train before scoring (techniques.md §6.2–6.4).

`trainable_parameters` picks what adapts: everything except the first `freeze_first_blocks`
blocks (#549/#1150/#1207), or only the last `train_last_blocks` blocks plus parameters whose
name contains one of `train_name_patterns` (#700/#731's "unfreeze the last N" reading).
"""


import math

import numpy as np
import torch
import torch.distributed as dist



def trainable_parameters(model: torch.nn.Module, freeze_first_blocks: int = 0, train_last_blocks: int = 0,
                         name_patterns: list[str] | tuple[str, ...] = ()) -> list[tuple[str, torch.nn.Parameter]]:
    n_blocks = len(model.blocks)
    chosen = []
    for name, p in model.named_parameters():
        block = int(name.split(".")[1]) if name.startswith("blocks.") else None
        if train_last_blocks > 0:
            keep = (block is not None and block >= n_blocks - train_last_blocks) or any(s in name for s in name_patterns)
        else:
            keep = block is None or block >= freeze_first_blocks
        if keep:
            chosen.append((name, p))
    return chosen


def make_optimizer(params: list[torch.nn.Parameter], kind: str, lr: float, momentum: float,
                   betas: list[float], weight_decay: float) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    pass

    raise ConfigError(f"TTT optimizer must be 'sgd' or 'adamw', got {kind!r}")


def chunk_lr(base: float, k: int, n_chunks: int, schedule: str, floor: float = 0.0) -> float:
    """#549: cosine over chunks; #606/#700/#731 ("cosine-ramp"): ×(1 + 2·min(k/0.3K, 1)) on top."""
    if schedule == "constant" or n_chunks <= 1:
        lr = base
    else:
        lr = base * 0.5 * (1 + math.cos(math.pi * k / (n_chunks - 1)))
        if schedule == "cosine-ramp":
            lr *= 1 + 2 * min(k / (0.3 * n_chunks), 1.0)
    return max(lr, floor * base)


def train_on_span(model, tokens: np.ndarray, lo: int, hi: int, seq_len: int, params, optimizer,
                  lr: float, epochs: int, batch_seqs: int, grad_clip: float, runtime, byte_tables=None,
                  byte_weighting: str = "", after_step=None) -> int:
    """Train on targets lo..hi−1 (inputs tokens[lo:hi], targets tokens[lo+1:hi+1]) as whole sequences
    of seq_len; ranks take contiguous shares and average gradients. Returns the steps taken."""
    n_seqs = (hi - lo) // seq_len
    if n_seqs == 0:
        return 0
    span = torch.from_numpy(tokens[lo : lo + n_seqs * seq_len + 1].astype(np.int64)).to(runtime.device)
    x_all, y_all = span[:-1].view(n_seqs, seq_len), span[1:].view(n_seqs, seq_len)
    first = n_seqs * runtime.rank // runtime.world_size
    last = n_seqs * (runtime.rank + 1) // runtime.world_size
    for g in optimizer.param_groups:
        g["lr"] = lr
    was_training = model.training
    model.train()
    steps = 0
    for _ in range(epochs):
        for s in range(first, max(last, first + 1), batch_seqs):
            x, y = x_all[s : min(s + batch_seqs, last)], y_all[s : min(s + batch_seqs, last)]
            optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad():
                if x.numel():
                    with autocast_context(runtime):
                        nats = model(x, y, reduction="none").float()
                    if byte_weighting and byte_tables is not None:
                        w = byte_tables.count(x, y).float() if byte_weighting == "exact" else byte_tables.base_bytes[y].float()
                        loss = (nats * w).sum() / w.sum().clamp_min(1) if byte_weighting == "exact" else (nats * w / w.mean().clamp_min(1e-9)).mean()
                    else:
                        loss = nats.mean()
                    loss.backward()
            if runtime.distributed:
                for p in params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            steps += 1
            if after_step is not None:
                after_step()
    model.train(was_training)
    return steps

# ---------------------------------------------------------------------------- pgolf/evaluate/windows.py
"""Which windows an evaluation runs and which of their positions it scores (techniques.md §6.1).

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


from dataclasses import dataclass



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
    usable = ((n_tokens - 1) // seq_len) * seq_len
    if usable <= 0:
        raise DataError(f"the validation split has {n_tokens} tokens, fewer than one sequence of {seq_len}")
    return [Window(s, seq_len, 0) for s in range(0, usable, seq_len)]


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

# ---------------------------------------------------------------------------- pgolf/evaluate/methods/sliding.py
"""`sliding`: overlapping windows advancing by `stride`; each target scored once with ≥ T−S
tokens of context (techniques.md §6.1). `legacy_tail` reproduces the records' loop, which
re-scores the stream's final targets in every tail window (its bpb differs by ~3e-5 of weight)."""


from dataclasses import dataclass



@dataclass
class SlidingOptions:
    seq_len: int = 0  # 0 = the preset's eval.seq_len
    stride: int = 64
    batch_windows: int = 32
    legacy_tail: bool = False


@register
class Sliding(EvalMethod):
    name = "sliding"
    role = "windows"
    section = "sliding"
    options = SlidingOptions

    def windows(self, n_tokens: int) -> list[Window]:
        return sliding_windows(n_tokens, self.ctx.seq_len, self.cfg.stride, self.cfg.legacy_tail)

# ---------------------------------------------------------------------------- pgolf/evaluate/methods/standard.py
"""`standard`: the contest's `eval_val` — non-overlapping windows of seq_len (techniques.md §2.4)."""


from dataclasses import dataclass



@dataclass
class StandardOptions:
    seq_len: int = 0  # 0 = the preset's eval.seq_len
    batch_windows: int = 64


@register
class Standard(EvalMethod):
    name = "standard"
    role = "windows"
    section = "standard"
    options = StandardOptions

    def windows(self, n_tokens: int) -> list[Window]:
        return standard_windows(n_tokens, self.ctx.seq_len)

# ---------------------------------------------------------------------------- pgolf/evaluate/methods/ttt.py
"""`ttt`: score-first test-time training (techniques.md §6.2, #549; §6.3 AdamW + Polyak, #700/#731).

The stream is cut into chunks of `chunk_tokens` targets. The pipeline scores all of chunk k with
the current weights (no gradient) and only then calls `after_chunk`, which trains on chunk k's
tokens; chunk k+1 is therefore scored by weights adapted on chunks 0…k only, and the last chunk
is never trained on. With `polyak_decay > 0` a Polyak/EMA copy of the adapted weights is swapped
in for scoring (#606 recipe). `byte_weighted`: "" (plain mean), "exact" (bpb byte counts, #700)
or "base_bytes" (mean-normalised base bytes, #731).
"""


import contextlib
from dataclasses import dataclass, field

import torch



@dataclass
class TTTOptions:
    chunk_tokens: int = 32_768
    optimizer: str = "sgd"
    lr: float = 0.002
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    epochs: int = 3
    batch_seqs: int = 32
    seq_len: int = 0  # 0 = the evaluation's seq_len
    freeze_first_blocks: int = 0
    train_last_blocks: int = 0
    train_name_patterns: list[str] = field(default_factory=list)
    lr_schedule: str = "cosine"  # cosine | cosine-ramp | constant
    lr_floor: float = 0.0
    grad_clip: float = 1.0
    polyak_decay: float = 0.0
    byte_weighted: str = ""


class ChunkTrainer(EvalMethod):
    """Adapts the model on a span of the stream; shared by `ttt` and the illegal fixtures."""

    options = TTTOptions
    section = "ttt"

    def setup(self, model: torch.nn.Module) -> None:
        if getattr(self, "_params", None) is not None:
            return
        chosen = trainable_parameters(model, self.cfg.freeze_first_blocks, self.cfg.train_last_blocks,
                                      self.cfg.train_name_patterns)
        self._names = [n for n, _ in chosen]
        self._params = [p for _, p in chosen]
        chosen_ids = {id(p) for p in self._params}
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen_ids)
        self._opt = make_optimizer(self._params, self.cfg.optimizer, self.cfg.lr, self.cfg.momentum,
                                   self.cfg.betas, self.cfg.weight_decay)
        self._polyak = [p.detach().clone() for p in self._params] if self.cfg.polyak_decay > 0 else None
        self.steps = 0

    def train_span(self, model, lo: int, hi: int, k: int, n_chunks: int, used_from: int | None = None) -> None:
        """Train on targets lo..hi−1; the adapted weights score positions ≥ used_from (default hi)."""
        self.setup(model)
        lr = chunk_lr(self.cfg.lr, k, n_chunks, self.cfg.lr_schedule, self.cfg.lr_floor)

        def polyak_update() -> None:
            if self._polyak is not None:
                torch._foreach_lerp_(self._polyak, [p.detach() for p in self._params], 1 - self.cfg.polyak_decay)

        self.steps += train_on_span(model, self.ctx.tokens, lo, hi, self.cfg.seq_len or self.ctx.seq_len,
                                    self._params, self._opt, lr, self.cfg.epochs, self.cfg.batch_seqs,
                                    self.cfg.grad_clip, self.ctx.runtime, self.ctx.tables, self.cfg.byte_weighted,
                                    after_step=polyak_update)
        self.ctx.notify("on_update", method=self.name, state="weights", spans=[(lo, hi)],
                        used_from=hi if used_from is None else used_from)

    @contextlib.contextmanager
    def scoring_weights(self, model: torch.nn.Module):
        """Score with the Polyak copy when there is one; train with the raw weights."""
        if getattr(self, "_polyak", None) is None:
            yield
            return
        raw = [p.detach().clone() for p in self._params]
        with torch.no_grad():
            for p, avg in zip(self._params, self._polyak):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self._params, raw):
                    p.copy_(r)

    def describe(self) -> dict:
        out = super().describe()
        if getattr(self, "_params", None) is not None:
            out["trainable_params"] = sum(p.numel() for p in self._params)
            out["steps"] = self.steps
        return out


@register
class ScoreFirstTTT(ChunkTrainer):
    name = "ttt"
    role = "adapt"

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    def after_chunk(self, model, lo: int, hi: int, k: int, n_chunks: int) -> None:
        # lo..hi−1 are this chunk's targets, all scored already (the pipeline guarantees it).
        self.train_span(model, lo, hi, k, n_chunks)

# ---------------------------------------------------------------------------- pgolf/model/addons/bigram_hash.py
"""BigramHash embedding (PR #162 lineage): a hashed (previous, current) input-token pair table.

h_t = ((36313·x_t) XOR (27191·x_{t−1})) mod (K−1) for t ≥ 1, h_0 = K−1 (per sequence);
x ← tok_emb(x_t) + scale · P · B[h_t], before the first RMSNorm. B ∈ R^{K×dim} zero-init,
P: dim → d, scale init 0.05. Only input tokens are hashed (legal: no target leakage).
Optimizer (#549): the table in the embedding group, projection and scale in the scalar group.
Choice: P starts at zero but is not flagged zero-init, so `orthogonal_init` overwrites it as in
the #549 lineage (techniques.md §3.8).
"""


from dataclasses import dataclass

import torch
from torch import nn


MUL_CURRENT, MUL_PREVIOUS = 36313, 27191


def bigram_buckets(ids: torch.Tensor, buckets: int) -> torch.Tensor:
    ids = ids.long()
    h = torch.full_like(ids, buckets - 1)
    h[:, 1:] = torch.bitwise_xor(MUL_CURRENT * ids[:, 1:], MUL_PREVIOUS * ids[:, :-1]) % (buckets - 1)
    return h


@ADDONS.register("bigram_hash")
class BigramHash(AddOn):
    @dataclass
    class Config:
        buckets: int = 2048
        dim: int = 128
        scale_init: float = 0.05

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.table = nn.Parameter(torch.zeros(cfg.buckets, cfg.dim))
        self.proj = Linear(cfg.dim, model_cfg.model_dim)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(float(cfg.scale_init)))

    def optim_group(self, param_name):
        return "embed" if param_name == "table" else "scalar"

    def embed(self, x, ctx):
        h = bigram_buckets(ctx.ids, self.cfg.buckets)
        return x + self.scale.to(x.dtype) * self.proj(self.table[h].to(x.dtype))

# ---------------------------------------------------------------------------- pgolf/model/addons/ln_scale.py
"""LN scale (PR #315): multiply the outputs of both pre-norms of block i (0-based) by 1/√(i+1).
No parameters; damps deeper blocks' inputs."""


import math
from dataclasses import dataclass



@ADDONS.register("ln_scale")
class LNScale(AddOn):
    @dataclass
    class Config:
        pass

    def norm_scale(self, layer):
        return 1.0 / math.sqrt(layer + 1)

# ---------------------------------------------------------------------------- pgolf/model/addons/orthogonal_init.py
"""Orthogonal init (PR #162 lineage): `orthogonal_(gain=1)` for every 2-D linear with both dims
≥ 64 that is not flagged zero-init (attention/MLP output projections stay zero).

`scale_proj = true` reproduces the #162/#731/#700 lineage's "output projections scaled by
1/√(2L)", which in code multiplies every orthogonally-initialised module whose name ends in
`.proj` — in practice only the BigramHash/VE projections (techniques.md §3.14). The #549 code
leaves them unscaled (`scale_proj = false`).
"""


import math
from dataclasses import dataclass

import torch
from torch import nn



@ADDONS.register("orthogonal_init")
class OrthogonalInit(AddOn):
    ORDER = 99

    @dataclass
    class Config:
        scale_proj: bool = False

    def init_weights(self, model):
        scale = 1.0 / math.sqrt(2 * self.model_cfg.num_layers)
        with torch.no_grad():
            for name, module in model.named_modules():
                if not isinstance(module, nn.Linear) or getattr(module, "zero_init", False):
                    continue
                if min(module.weight.shape) < 64:
                    continue
                nn.init.orthogonal_(module.weight, gain=1.0)
                if self.cfg.scale_proj and name.endswith(".proj"):
                    module.weight.mul_(scale)

# ---------------------------------------------------------------------------- pgolf/model/addons/partial_rope.py
"""Partial RoPE (PR #315): rotate only the first `dims` of each q/k head (pairs (i, i + dims/2)),
leaving the other dims position-free.

`ntk_train_seq_len` reproduces what the #549/#1313/#1488/#731/#700 code did: it builds the rotary
with train_seq_len=1024 while training at T=2048, so the NTK-scaled base
10000·(2048/1024)^(16/14) ≈ 22,080 is used in training and evaluation alike (techniques.md §3.4).
Set it to 0 for a plain base.
"""


from dataclasses import dataclass



@ADDONS.register("partial_rope")
class PartialRope(AddOn):
    @dataclass
    class Config:
        dims: int = 16
        ntk_train_seq_len: int = 0

    def make_rotary(self, head_dim, base):
        return Rotary(head_dim, base, dims=self.cfg.dims, ntk_train_seq_len=self.cfg.ntk_train_seq_len)

# ---------------------------------------------------------------------------- pgolf/model/addons/smear_gate.py
"""SmearGate v2 (PR #162 lineage, used by every seed): blend each position's normalised
embedding with the previous position's, per channel: g = σ(γ), γ ∈ R^d init 0 (g = 0.5);
x_t ← (1−g)⊙x_t + g⊙x_{t−1}, x_{−1} = 0. Applied right after the first RMSNorm; the result is
x0. Causal by construction."""


from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn



@ADDONS.register("smear_gate")
class SmearGate(AddOn):
    @dataclass
    class Config:
        gate_init: float = 0.0

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.smear = nn.Parameter(torch.full((model_cfg.model_dim,), float(cfg.gate_init)))

    def post_embed(self, x, ctx):
        g = torch.sigmoid(self.smear).to(x.dtype)
        prev = F.pad(x[:, :-1], (0, 0, 1, 0))
        return (1 - g) * x + g * prev

# ---------------------------------------------------------------------------- pgolf/model/addons/unet_skips.py
"""U-Net skip connections (naive baseline; credited to PR #289).

The first ⌊L/2⌋ blocks push their outputs on a stack; each of the mirrored decoder blocks first
adds `s_j ⊙ pop()` (s_j per-channel, init 1). With L=9: 4 encoder + 5 decoder blocks, 4 skips,
the last decoder block gets none.
"""


from dataclasses import dataclass

import torch
from torch import nn



@ADDONS.register("unet_skips")
class UNetSkips(AddOn):
    ORDER = 90  # push the block's final output, after any gate on it

    @dataclass
    class Config:
        pass

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.num_encoder = model_cfg.num_layers // 2
        num_skips = min(self.num_encoder, model_cfg.num_layers - self.num_encoder)
        self.skip_weights = nn.Parameter(torch.ones(num_skips, model_cfg.model_dim))

    def after_block(self, x_in, x, layer, ctx):
        if layer < self.num_encoder:
            ctx.stash.setdefault("unet", []).append(x)
        return x

    def before_block(self, x, layer, ctx):
        stack = ctx.stash.get("unet")
        if layer >= self.num_encoder and stack:
            x = x + self.skip_weights[layer - self.num_encoder].to(x.dtype) * stack.pop()
        return x

# ---------------------------------------------------------------------------- pgolf/model/addons/value_embed.py
"""Value embeddings (VE, PR #374): a second token table added to chosen layers' values.

E_ve ∈ R^{V×dim} (init N(0, 0.01²)), projection dim → H_kv·D, a global scale (init 0.1) and one
scale per target layer (init 1). At each target layer the projected embedding of the current
input token is added to the value projection output before it is split into heads.
Choice: the projection starts at zero but is not flagged zero-init, so `orthogonal_init`
overwrites it as the #549 lineage's global init loop did (techniques.md §3.8 pitfall).
"""


from dataclasses import dataclass, field

import torch
from torch import nn



@ADDONS.register("value_embed")
class ValueEmbed(AddOn):
    ORDER = 40

    @dataclass
    class Config:
        dim: int = 128
        layers: list[int] = field(default_factory=lambda: [-2, -1])
        init_std: float = 0.01
        scale_init: float = 0.1

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.layers = sorted(select_layers(model_cfg.num_layers, cfg.layers, 0))
        kv_dim = model_cfg.num_kv_heads * (model_cfg.model_dim // model_cfg.num_heads)
        self.table = nn.Parameter(torch.randn(model_cfg.vocab_size, cfg.dim) * cfg.init_std)
        self.proj = Linear(cfg.dim, kv_dim)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(float(cfg.scale_init)))
        self.layer_scales = nn.Parameter(torch.ones(len(self.layers)))

    def applies_to(self, layer):
        return layer in self.layers

    def optim_group(self, param_name):
        return "embed" if param_name == "table" else "scalar"

    def values(self, v, layer, ctx):
        ve = ctx.stash.get("value_embed")
        if ve is None:
            ve = self.proj(self.table[ctx.ids].to(v.dtype))
            ctx.stash["value_embed"] = ve
        k = self.layers.index(layer)
        return v + (self.scale * self.layer_scales[k]).to(v.dtype) * ve

# ---------------------------------------------------------------------------- pgolf/model/addons/xsa.py
"""XSA, exclusive self-attention (arXiv 2603.09078; #549 lineage, "XSA-4", "XSA-all").

Per head, remove from the attention output y_i its component along the token's own value:
z_i = y_i − (y_iᵀ v̂_i) v̂_i, v̂_i = v_i/‖v_i‖, before the output projection. With GQA each query
head uses its KV head's value (broadcast over the group, no repeat). v is the value that fed
attention, i.e. after value embeddings / value residual. `last = N` acts on the last N layers
(0 = all); `layers = [...]` picks layers explicitly.
"""


from dataclasses import dataclass, field

import torch.nn.functional as F



@ADDONS.register("xsa")
class XSA(AddOn):
    @dataclass
    class Config:
        last: int = 0
        layers: list[int] = field(default_factory=list)

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.layers = select_layers(model_cfg.num_layers, cfg.layers, cfg.last)

    def applies_to(self, layer):
        return layer in self.layers

    def attn_output(self, y, v, layer, ctx):
        b, h, t, d = y.shape
        hkv = v.size(1)
        yg = y.view(b, hkv, h // hkv, t, d)
        vn = F.normalize(v, dim=-1).unsqueeze(2)
        return (yg - (yg * vn).sum(-1, keepdim=True) * vn).view(b, h, t, d)

# ---------------------------------------------------------------------------- pgolf/quant/gptq_lite.py
"""GPTQ-lite (`.../2026-03-22_11L_EMA_GPTQ-lite...`): data-free clip search. For each matrix try
the clip quantiles {0.999, 0.9995, 0.9999, 0.99999, 1.0} of |W_r| and keep the candidate with
the lowest squared reconstruction error.

Granularity (`pack.clip_search`): "matrix" — one quantile for the whole matrix, what the
#549/#1313/#1488/#731/#1150 code does (their READMEs say per row) — or "row" — the best quantile
per row, #700's `_find_best_row_scales`. Registered as gptq-lite-int8/int6/int5.
"""


import functools

import torch


CLIP_QUANTILES = (0.999, 0.9995, 0.9999, 0.99999, 1.0)


def row_quantiles(abs_w: torch.Tensor, qs: tuple[float, ...]) -> list[torch.Tensor]:
    """Per-row quantiles (linear interpolation, as torch.quantile) from one sort."""
    srt = abs_w.sort(dim=1).values
    n = srt.size(1)
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        out.append(srt[:, lo] + (srt[:, hi] - srt[:, lo]) * (pos - lo))
    return out


def clip_search_matrix(w: torch.Tensor, bits: int, granularity: str):
    if granularity not in ("matrix", "row"):
        raise ConfigError(f"pack.clip_search must be 'matrix' or 'row', got {granularity!r}")
    best_q = best_s = best_err = None
    for clip in row_quantiles(w.abs(), CLIP_QUANTILES):
        q, s = quantize_rows_with_clip(w, clip, bits)
        err = (q.float() * s.float()[:, None] - w).square().sum(dim=1)  # per row
        if best_q is None:
            best_q, best_s, best_err = q, s, err
        elif granularity == "matrix":
            if err.sum() < best_err.sum():
                best_q, best_s, best_err = q, s, err
        else:
            better = err < best_err
            best_q = torch.where(better[:, None], q, best_q)
            best_s = torch.where(better, s, best_s)
            best_err = torch.minimum(err, best_err)
    return best_q, best_s


for _bits in (8, 6, 5):
    QUANTIZERS.register(f"gptq-lite-int{_bits}")(functools.partial(
        lambda state, cfg, b, hessians=None: encode_mixed(
            state, cfg, b, lambda w, bits, name: clip_search_matrix(w, bits, cfg.clip_search)),
        b=_bits))

# ---------------------------------------------------------------------------- pgolf/quant/int8_rtn.py
"""The naive baseline's export quantizer, reproduced faithfully (techniques.md §2.4).

For each state-dict tensor:
- non-float tensors are stored raw;
- float tensors with ≤ 65,536 elements are kept: fp32 for control tensors (scales, mixes,
  gains, skip weights), fp16 otherwise;
- 2-D float tensors: per-row int8 with clip c_r = quantile(|W_r|, 0.9999984),
  s_r = max(c_r/127, 1/127) stored fp16, q = clamp(round(clip(W, ±c_r)/s_r), ±127);
- other float tensors: one per-tensor scale c/127 (fp32).
The scale floor 1/127 is the contest code's (`clamp_min(1/127)`): rows whose clip is below 1 get
the absolute step 1/127. It is kept as the code has it, not "fixed".
"""


import numpy as np
import torch


CLIP_QUANTILE = 0.9999984
QMAX = 127


def _row_quantile(w: torch.Tensor, q: float) -> torch.Tensor:
    # torch.quantile refuses very large inputs; sort-based per-row quantile has no such limit
    # and equals torch.quantile's linear interpolation.
    n = w.size(1)
    srt = w.sort(dim=1).values
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return srt[:, lo] + (srt[:, hi] - srt[:, lo]) * frac


def quantize_per_row(w: torch.Tensor, qmax: int = QMAX, clip_quantile: float = CLIP_QUANTILE):
    w = w.float()
    clip = _row_quantile(w.abs(), clip_quantile) if w.numel() else torch.empty(w.size(0))
    clipped = torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None])
    scale = (clip / qmax).clamp_min(1.0 / qmax)
    q = torch.clamp(torch.round(clipped / scale[:, None]), -qmax, qmax).to(torch.int8)
    return q, scale.to(torch.float16)


@QUANTIZERS.register("int8-rtn")
def quantize_int8_rtn(state: dict[str, torch.Tensor], cfg=None, hessians=None) -> list[EncodedTensor]:
    out = []
    for name, t in state.items():
        t = t.detach().cpu()
        shape = tuple(t.shape)
        kept = passthrough(name, t)
        if kept is not None:
            out.append(kept)
        elif t.ndim == 2:
            q, scale = quantize_per_row(t)
            out.append(EncodedTensor(name, shape, "int_per_row", {"q": q.numpy(), "scale": scale.numpy()}))
        else:
            t32 = t.float().flatten()
            clip = float(torch.quantile(t32.abs(), CLIP_QUANTILE)) if t32.numel() else 0.0
            scale = clip / QMAX if clip > 0 else 1.0
            q = torch.clamp(torch.round(t32.clamp(-clip, clip) / scale), -QMAX, QMAX).to(torch.int8)
            out.append(EncodedTensor(name, shape, "int_per_tensor",
                                     {"q": q.numpy(), "scale": np.array([scale], dtype=np.float32)}))
    return out

# ---------------------------------------------------------------------------- pgolf/quant/rtn.py
"""Per-row symmetric round-to-nearest at int8 / int6 / int5 with fp16 scales: s_r = max|W_r|/qmax,
q = round(W/s_r) in [−qmax, qmax] (qmax = 127, 31, 15), under the seeds' mixed-precision policy
(pgolf.quant.mixed). Registered as rtn-int8, rtn-int6, rtn-int5."""


import functools



def rtn_matrix(w, bits, name=None):
    return quantize_rows_with_clip(w, w.abs().amax(dim=1), bits)


for _bits in (8, 6, 5):
    QUANTIZERS.register(f"rtn-int{_bits}")(
        functools.partial(lambda state, cfg, b, hessians=None: encode_mixed(state, cfg, b, rtn_matrix), b=_bits))

PRESET_JSON = '{"compression":{"clip_search":"per-matrix","compressor":"lzma","embedding":"int8","late_qat_lr_scale":0.15,"lzma_preset":6,"matrices":"int6","quantizer":"gptq-lite","small_tensors":"fp16"},"description":"record-549 at cpu-mini scale","eval":{"batch_tokens":32768,"seq_len":512},"evaluation":{"methods":["sliding","ttt"],"sliding":{"seq_len":2048,"stride":64},"ttt":{"chunk_tokens":32768,"epochs":3,"freeze_first_blocks":0,"grad_clip":1.0,"lr":0.002,"lr_schedule":"cosine","momentum":0.9,"optimizer":"sgd"}},"model":{"activation":"leaky_relu2","addons":{"bigram_hash":{"buckets":1536,"dim":64},"ln_scale":{},"orthogonal_init":{"scale_proj":false},"partial_rope":{"dims":16,"ntk_train_seq_len":1024},"smear_gate":{},"unet_skips":{},"value_embed":{"dim":64,"layers":[-2,-1]},"xsa":{"last":2}},"logit_softcap":30.0,"mlp_mult":3.0,"model_dim":256,"num_heads":4,"num_kv_heads":2,"num_layers":4,"qk_gain_init":1.5,"rope_base":10000.0,"tie_embeddings":true,"tied_embed_init_std":0.005,"vocab_size":1024},"name":"record-549-mini","pack":{"budget_bytes":16000000,"clip_search":"matrix","compressor":"zlib","compressors":[],"embedding_bits":8,"gptq_act_order":"descending","quant":"int8-rtn"},"reference":{},"train":{"adam_eps":1e-08,"adam_weight_decay":0.04,"averaging":"ema","beta1":0.9,"beta2":0.95,"checkpoint_every":0,"compile":"on","crown_q_lambda":0.0,"crown_q_qmax":15,"ema_decay":0.75,"embed_lr":0.6,"gptq_calibration_sequences":0,"gptq_reserve_seconds":0.0,"grad_accum":2,"grad_clip_norm":0.3,"head_lr":0.008,"iterations":20000,"matrix_lr":0.025,"max_wallclock_seconds":90.0,"muon_backend_steps":5,"muon_momentum":0.99,"muon_momentum_warmup_start":0.92,"muon_momentum_warmup_steps":50,"muon_weight_decay":0.04,"qat_bits":0,"qat_start_lr_scale":0.15,"scalar_lr":0.025,"seed":42,"seq_len":512,"swa_every":50,"swa_start_lr_scale":0.5,"tied_embed_lr":0.035,"tokens_per_step":16384,"train_log_every":10,"val_every":0,"val_tokens_limit":65536,"warmdown_fraction":0.4,"warmdown_iters":3500,"warmup_steps":2}}'

# ---------------------------------------------------------------------------- entry point
PRESET = json.loads(PRESET_JSON)


def load_all():  # every add-on this preset uses is defined above
    return None


def code_bytes():
    return len(Path(__file__).read_bytes()), "this file"


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="pgolf export of preset " + PRESET["name"])
    ap.add_argument("--data", required=True, help="shard directory (fineweb_{train,val}_*.bin)")
    ap.add_argument("--tokenizer", required=True, help="SentencePiece .model")
    ap.add_argument("--out", default="run", help="run directory")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    runtime = init_runtime(args.device)
    try:
        summary = train(preset_from_dict(PRESET), args.data, args.out, runtime, tokenizer=args.tokenizer)
    finally:
        shutdown()
    if not runtime.is_main:
        return 0
    packed = pack_run(args.out, allow_over_budget=True)
    result = evaluate_artifact(packed["artifact"], args.data, Runtime(device=runtime.device), tokenizer=args.tokenizer)
    print(f"final_{packed['quant']}_{packed['compressor']}_roundtrip_exact val_loss:{result['val_loss']:.8f} "
          f"val_bpb:{result['val_bpb']:.8f}")
    print(f"bytes_total:{packed['total_bytes']} bytes_code:{packed['code_bytes']} bytes_model:{packed['model_bytes']}")
    print(json.dumps({"val_loss": result["val_loss"], "val_bpb": result["val_bpb"], "steps": summary["steps"],
                      "bytes_total": packed["total_bytes"], "bytes_code": packed["code_bytes"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
