"""How the quantized integers are laid out for the compressor.

Bit-packing makes an int6 weight cost exactly 6 bits, but it also cuts values across byte
boundaries, so the compressors (which model bytes) no longer see one symbol per weight. Measured
on a trained cpu-mini's int6 block matrices: packed + brotli-11 costs 0.707 B/param, one int8
byte per weight 0.660, and the same bytes column by column 0.651 — against an order-0 entropy of
the integers of 0.660 B/param. So `pack` tries each layout with each compressor and keeps the
smallest; decoding needs only the encoding name, never the layout that chose it.

- `packed`: int6/int5 bit-packed (`int_per_row_packed`), int8 as bytes — the quantizers' output;
- `bytes`: every per-row integer tensor as one int8 byte per weight, row by row (`int_per_row`);
- `columns`: the same bytes column by column (`int_per_row_t`): a column's weights feed the same
  input feature, so neighbouring bytes share a scale of magnitude that the context models use.
"""

from __future__ import annotations

import numpy as np

from pgolf.config import LAYOUTS
from pgolf.quant.encoding import EncodedTensor, main_shape
from pgolf.quant.packing import unpack_signed



def _row_integers(t: EncodedTensor) -> np.ndarray | None:
    """The (rows, cols) int8 integers of a per-row quantized tensor, or None for any other tensor."""
    if t.encoding == "int_per_row":
        q = np.asarray(t.parts["q"])
        return q.reshape(q.shape[0], -1).astype(np.int8)
    if t.encoding == "int_per_row_packed":
        bits = int(np.asarray(t.parts["bits"]).reshape(-1)[0])
        rows = int(np.asarray(t.parts["scale"]).size)
        count = int(np.prod(main_shape(t)))
        return unpack_signed(t.parts["q"], bits, count).astype(np.int8).reshape(rows, -1)
    return None


def check_layouts(layouts: list[str], where: str = "pack.layouts") -> None:
    """The one check of layout names (the preset check, pack and relayout all call it)."""
    from pgolf.errors import ConfigError, did_you_mean

    for layout in layouts:
        if layout not in LAYOUTS:
            raise ConfigError(f"{where} = {layout!r} is not valid{did_you_mean(layout, LAYOUTS)} "
                              f"(valid: {', '.join(LAYOUTS)})")


def relayout(tensors: list[EncodedTensor], layout: str) -> list[EncodedTensor]:
    """Re-lay a quantizer's output (the `packed` layout) without changing any decoded value."""
    check_layouts([layout], "layout")
    if layout == "packed":
        return tensors
    out = []
    for t in tensors:
        q = _row_integers(t)
        if q is None:
            out.append(t)
            continue
        extra = {k: v for k, v in t.parts.items() if k not in ("q", "bits")}  # scale, LQER, AWQ parts
        if layout == "bytes":
            out.append(EncodedTensor(t.name, t.shape, "int_per_row", {"q": q, **extra}, t.dtype))
        else:
            out.append(EncodedTensor(t.name, t.shape, "int_per_row_t",
                                     {"q": np.ascontiguousarray(q.T), **extra}, t.dtype))
    return out
