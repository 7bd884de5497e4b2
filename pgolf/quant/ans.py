"""Entropy coding of a group of quantized code matrices with rANS (constriction) under a
class-conditioned model: the stand-in for the 1.0611 record's lrzip/ZPAQ, which this image and
the contest's do not carry.

A byte compressor (Brotli, LZMA) gets close to the order-0 entropy of int6 codes but no lower (on
a trained model's SDClip codes: 0.4277 B/weight vs an order-0 entropy of 0.4276). What is left is
that columns (input features) and rows (output features) are not alike: after training some input
features carry larger weights than others. So the codes of a group (one kind of matrix over all
layers) are split into `classes` classes of columns — or of rows — by their mean |code|
(boundaries at the group's quantiles), each class gets its own histogram, and every code is
coded with its class's histogram by an asymmetric numeral system. Axis and class count are chosen
per group by the exact cost (codes' cross-entropy plus the stored histograms and class indices).

Stream of one group: uint8 axis, uint8 classes, int16 lowest code, uint16 alphabet size, the
histograms (classes × alphabet uint16), each matrix's class per column/row (uint8), then the
rANS words (uint32). Histograms are the class counts rescaled to at most 65,535, never 0 inside
the alphabet (constriction gives every symbol of the alphabet a non-zero probability anyway).
Written by hand around constriction's coder because no library models per-class histograms of
int8 matrices; the coder itself is constriction's.
"""

from __future__ import annotations

import io
import struct

import numpy as np

CLASS_CHOICES = (1, 2, 4, 8, 16)


def _constriction():
    try:
        import constriction
    except ImportError:
        from pgolf.errors import ConfigError

        raise ConfigError("the ans backend of the pergroup compressor needs the 'constriction' package "
                          "(pip install constriction)") from None
    return constriction


def constriction_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("constriction") is not None


def _classes_of(matrices: list[np.ndarray], axis: int, classes: int) -> list[np.ndarray]:
    """Each matrix's class (0..classes-1) per column (axis 0 statistics) or per row (axis 1)."""
    stats = [np.abs(m.astype(np.float32)).mean(axis=axis) for m in matrices]
    if classes == 1:
        return [np.zeros(s.shape, dtype=np.uint8) for s in stats]
    edges = np.quantile(np.concatenate(stats), np.linspace(0, 1, classes + 1)[1:-1])
    return [np.searchsorted(edges, s, side="right").astype(np.uint8) for s in stats]


def _lines(m: np.ndarray, axis: int) -> np.ndarray:
    """The matrix as (lines, length): columns for axis 0, rows for axis 1."""
    return m.T if axis == 0 else m


def _histograms(matrices, cls, axis, classes, lo, size) -> np.ndarray:
    counts = np.zeros(classes * size, dtype=np.int64)
    for m, c in zip(matrices, cls):
        lines = _lines(m, axis).astype(np.int64) - lo
        index = (c.astype(np.int64)[:, None] * size + lines).reshape(-1)
        counts += np.bincount(index, minlength=classes * size)
    return counts.reshape(classes, size)


def _stored_histograms(counts: np.ndarray) -> np.ndarray:
    scale = np.minimum(1.0, 65535 / np.maximum(counts.max(axis=1, keepdims=True), 1))
    return np.maximum(np.round(counts * scale), 1).astype(np.uint16)


def _cost_bits(counts: np.ndarray, stored: np.ndarray) -> float:
    p = stored.astype(np.float64) / stored.sum(axis=1, keepdims=True)
    return float(-(counts * np.log2(p)).sum())


def _alphabet(matrices: list[np.ndarray]) -> tuple[int, int]:
    """(lowest code, alphabet size) of the group; at least two symbols, which the coder needs."""
    lo = int(min(m.min() for m in matrices))
    return lo, max(int(max(m.max() for m in matrices)) - lo + 1, 2)


def choose_model(matrices: list[np.ndarray]) -> tuple[int, int]:
    """(axis, classes) of least estimated bytes for this group."""
    lo, size = _alphabet(matrices)
    best, best_cost = (0, 1), float("inf")
    for axis in (0, 1):
        for classes in CLASS_CHOICES:
            cls = _classes_of(matrices, axis, classes)
            counts = _histograms(matrices, cls, axis, classes, lo, size)
            cost = _cost_bits(counts, _stored_histograms(counts)) / 8 + 2 * classes * size \
                + (sum(c.size for c in cls) if classes > 1 else 0)
            if cost < best_cost:
                best, best_cost = (axis, classes), cost
    return best


def encode_group(matrices: list[np.ndarray], axis: int | None = None, classes: int | None = None) -> bytes:
    """The group's stream (module docstring); the matrices are int8 of any 2-D shapes."""
    constriction = _constriction()
    if axis is None or classes is None:
        axis, classes = choose_model(matrices)
    lo, size = _alphabet(matrices)
    cls = _classes_of(matrices, axis, classes)
    stored = _stored_histograms(_histograms(matrices, cls, axis, classes, lo, size))
    models = [constriction.stream.model.Categorical(row.astype(np.float64), perfect=False) for row in stored]
    coder = constriction.stream.stack.AnsCoder()
    # A stack: encode in the reverse of the order the decoder reads (matrix by matrix, class by class).
    for m, c in reversed(list(zip(matrices, cls))):
        lines = _lines(m, axis)
        for k in reversed(range(classes)):
            symbols = (lines[c == k].astype(np.int32) - lo).reshape(-1)
            if symbols.size:
                coder.encode_reverse(symbols, models[k])
    out = io.BytesIO()
    out.write(struct.pack("<BBhH", axis, classes, lo, size))
    out.write(stored.astype("<u2").tobytes())
    if classes > 1:
        for c in cls:
            out.write(c.tobytes())
    out.write(coder.get_compressed().astype("<u4").tobytes())
    return out.getvalue()


def decode_group(data: bytes, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    constriction = _constriction()
    axis, classes, lo, size = struct.unpack_from("<BBhH", data, 0)
    pos = 6
    stored = np.frombuffer(data, dtype="<u2", count=classes * size, offset=pos).reshape(classes, size)
    pos += 2 * classes * size
    cls = []
    for rows, cols in shapes:
        n = cols if axis == 0 else rows
        if classes > 1:
            cls.append(np.frombuffer(data, dtype=np.uint8, count=n, offset=pos))
            pos += n
        else:
            cls.append(np.zeros(n, dtype=np.uint8))
    words = np.frombuffer(data, dtype="<u4", offset=pos).astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    models = [constriction.stream.model.Categorical(row.astype(np.float64), perfect=False) for row in stored]
    out = []
    for (rows, cols), c in zip(shapes, cls):
        lines = np.empty((cols, rows) if axis == 0 else (rows, cols), dtype=np.int8)
        for k in range(classes):
            picked = np.flatnonzero(c == k)
            if picked.size:
                n = picked.size * lines.shape[1]
                lines[picked] = (coder.decode(models[k], n) + lo).astype(np.int8).reshape(picked.size, -1)
        out.append(np.ascontiguousarray(lines.T) if axis == 0 else lines)
    return out
