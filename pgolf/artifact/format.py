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

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pgolf.errors import ArtifactError
from pgolf.quant.compress import COMPRESSORS
from pgolf.quant.encoding import EncodedTensor

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


def encode_artifact(artifact: Artifact, compress=None) -> bytes:
    """`compress`: a coder that writes the artifact's compressor's format its own way (pergroup
    with fewer backends); the registered one when None."""
    name = artifact.compressor.encode("ascii")
    compressed = (compress or COMPRESSORS.get(artifact.compressor).compress)(_body(artifact))
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
