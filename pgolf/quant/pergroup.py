"""The `pergroup` compressor (#1855's `COMPRESSOR=pergroup`): the artifact body split into one stream
per kind of quantized matrix, each coded by whichever backend makes it smallest.

The body is pgolf's own (pgolf.artifact.format: header JSON + payload), so the codec reads the
tensor index to find the integer code matrices: every 2-D int8 part named `q` of at least
`MIN_GROUP_ELEMENTS` elements. They are grouped by name with the layer index removed (all layers'
`attn.c_q.weight` form one group, the embedding its own), and each group is coded by the smallest of:
- `ans`: rANS under per-class histograms (pgolf.quant.ans; needs `constriction`);
- `brotli` / `lzma`: the record's transform — rows of the embedding, c_q and mlp.fc reordered by
  greedy nearest neighbour in L1 (the permutation stored as uint16/uint32 before the codes), every
  matrix stored column by column — then the byte compressor.
Everything else (header, scales, small tensors, LQER factors, gate codes) is one Brotli-11 stream.
lrzip/ZPAQ, the record's choice, is not used: no Python package provides it (docs/compression.md).

Container: magic `PGG1` | uint32 stream count | uint32 length per stream | streams. Stream 0 is
Brotli(the body with the group parts cut out), streams 1… are the groups in order of first
appearance, each starting with one byte naming its backend. The decoder re-derives the groups
from the header inside stream 0, so nothing else is stored. Lossless on any input: a body that is
not a pgolf body has no groups.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pgolf.quant.compress import import_optional

PERGROUP_MAGIC = b"PGG1"
MIN_GROUP_ELEMENTS = 4096
SORTED_GROUPS = ("tok_emb.weight", "attn.c_q.weight", "mlp.fc.weight")  # the record's similarity-sorted groups
PERGROUP_BACKENDS = ("ans", "brotli", "lzma")


def _brotli_11(data: bytes) -> bytes:
    return import_optional("brotli", "brotli").compress(data, quality=11, lgwin=24)


@dataclass
class CodeCut:
    start: int  # offset in the body
    shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1]


def _code_groups(body: bytes) -> dict[str, list[CodeCut]]:
    """Group key -> the code matrices' places in the body, from the body's own tensor index."""
    try:
        (hlen,) = struct.unpack_from("<I", body, 0)  # pgolf.artifact.format's body (quant sits below artifact)
        header = json.loads(body[4 : 4 + hlen].decode("utf-8"))
        base = 4 + hlen
        groups: dict[str, list[CodeCut]] = {}
        for entry in header["tensors"]:
            for part in entry["parts"]:
                shape = part["shape"]
                if part["key"] == "q" and part["dtype"] == "int8" and len(shape) == 2 \
                        and shape[0] * shape[1] >= MIN_GROUP_ELEMENTS and part["nbytes"] == shape[0] * shape[1]:
                    key = re.sub(r"^blocks\.\d+\.", "", entry["name"]) + "/" + entry["encoding"]
                    groups.setdefault(key, []).append(CodeCut(base + int(part["offset"]), (shape[0], shape[1])))
        return groups
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return {}


def similarity_order(m: np.ndarray) -> np.ndarray:
    """Greedy nearest-neighbour tour of the rows in L1, from row 0 (the record's row sort); of
    equally near rows, the lowest-numbered.

    Each step measures only the rows not yet visited, kept packed in one tensor (a visited row's
    place is taken by the last one): half the work of measuring every row every step, and no
    masked writes, which made an 8,192-row embedding take minutes. L1 distances between integer
    codes are whole numbers far below 2^24, so float32 sums are exact and the tour is the same."""
    import torch

    rows = torch.from_numpy(np.array(m, dtype=np.float32))
    n = rows.shape[0]
    order = np.empty(n, dtype=np.int64)
    left = rows.clone()  # the unvisited rows, packed
    left_index = torch.arange(n)  # their row numbers
    at = 0  # the next row's place in `left`
    for i in range(n):
        cur = int(left_index[at])
        order[i] = cur
        last = n - 1 - i
        left[at], left_index[at] = left[last], left_index[last]
        left, left_index = left[:last], left_index[:last]
        if last == 0:
            break
        d = (left - rows[cur]).abs_().sum(dim=1)
        nearest = torch.nonzero(d == d.min()).flatten()
        at = int(nearest[torch.argmin(left_index[nearest])]) if nearest.numel() > 1 else int(nearest[0])
    return order


def _context_payload(key: str, matrices: list[np.ndarray]) -> bytes:
    """The record's transform: similarity-sorted rows (for its three groups), stored column-major."""
    out = []
    for m in matrices:
        if key.split("/")[0] in SORTED_GROUPS:
            order = similarity_order(m)
            out.append(order.astype(np.uint16 if m.shape[0] <= 65536 else np.uint32).tobytes())
            m = m[order]
        out.append(np.ascontiguousarray(m.T).tobytes())
    return b"".join(out)


def _from_context_payload(key: str, raw: bytes, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    out, pos = [], 0
    for rows, cols in shapes:
        order = None
        if key.split("/")[0] in SORTED_GROUPS:
            dt = np.uint16 if rows <= 65536 else np.uint32
            order = np.frombuffer(raw, dtype=dt, count=rows, offset=pos).astype(np.int64)
            pos += rows * np.dtype(dt).itemsize
        m = np.frombuffer(raw, dtype=np.int8, count=rows * cols, offset=pos).reshape(cols, rows).T
        pos += rows * cols
        if order is not None:
            restored = np.empty_like(m)
            restored[order] = m
            m = restored
        out.append(np.ascontiguousarray(m))
    return out


def _encode_group(backend: str, matrices: list[np.ndarray], raw: bytes | None) -> bytes:
    """One group by one backend; `raw`: its sorted column-major stream (the byte compressors' input)."""
    if backend == "ans":
        from pgolf.quant.ans import encode_group

        return encode_group(matrices)
    if backend == "brotli":
        return _brotli_11(raw)
    return lzma.compress(raw, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)


def _decode_group(backend: str, key: str, data: bytes, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    if backend == "ans":
        from pgolf.quant.ans import decode_group

        return decode_group(data, shapes)
    raw = import_optional("brotli", "brotli").decompress(data) if backend == "brotli" else lzma.decompress(data)
    return _from_context_payload(key, raw, shapes)


def available_backends() -> list[str]:
    from pgolf.quant.ans import constriction_available

    return [b for b in PERGROUP_BACKENDS if b != "ans" or constriction_available()]


def pergroup_compress(body: bytes, backends: list[str] | None = None) -> bytes:
    groups = _code_groups(body)
    backends = backends or available_backends()
    cuts = sorted((c for cs in groups.values() for c in cs), key=lambda c: c.start)
    remainder, pos = [], 0
    for c in cuts:
        remainder.append(body[pos : c.start])
        pos = c.start + c.nbytes
    remainder.append(body[pos:])
    matrices = {key: [np.frombuffer(body, dtype=np.int8, count=c.nbytes, offset=c.start).reshape(c.shape)
                      for c in cs] for key, cs in groups.items()}
    # Every (group, backend) coding is independent, and Brotli, LZMA and the sorts spend their time
    # outside the GIL, so threads code them side by side: a contest machine's many cores make pack's
    # minutes of compression seconds. The output does not depend on the order they finish in.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        remainder_stream = pool.submit(_brotli_11, b"".join(remainder))
        byte_backends = any(b != "ans" for b in backends)
        raws = {key: pool.submit(_context_payload, key, ms) if byte_backends else None for key, ms in matrices.items()}
        coded = {(key, b): pool.submit(lambda b=b, key=key: _encode_group(
                     b, matrices[key], raws[key].result() if b != "ans" else None)) for key in matrices for b in backends}
        streams = [remainder_stream.result()]
        for key in matrices:  # the smallest per group; on a tie, the earlier backend
            streams.append(min((bytes([PERGROUP_BACKENDS.index(b)]) + coded[key, b].result() for b in backends), key=len))
    return (PERGROUP_MAGIC + struct.pack("<I", len(streams)) + struct.pack(f"<{len(streams)}I", *map(len, streams))
            + b"".join(streams))


def pergroup_decompress(data: bytes) -> bytes:
    if data[:4] != PERGROUP_MAGIC:
        raise ValueError("not a pergroup stream")
    (count,) = struct.unpack_from("<I", data, 4)
    lengths = struct.unpack_from(f"<{count}I", data, 8)
    pos, streams = 8 + 4 * count, []
    for n in lengths:
        streams.append(data[pos : pos + n])
        pos += n
    remainder = import_optional("brotli", "brotli").decompress(streams[0])
    groups = _code_groups(remainder)  # the header is at the start of the remainder, uncut
    cuts = sorted((c for cs in groups.values() for c in cs), key=lambda c: c.start)
    body = bytearray(len(remainder) + sum(c.nbytes for c in cuts))
    src = dst = 0
    for c in cuts:  # the remainder's bytes fill the gaps between cuts
        n = c.start - dst
        body[dst : c.start] = remainder[src : src + n]
        src, dst = src + n, c.start + c.nbytes
    body[dst:] = remainder[src:]
    for (key, cs), stream in zip(groups.items(), streams[1:]):
        backend = PERGROUP_BACKENDS[stream[0]]
        for c, m in zip(cs, _decode_group(backend, key, stream[1:], [c.shape for c in cs])):
            body[c.start : c.start + c.nbytes] = m.tobytes()
    return bytes(body)
