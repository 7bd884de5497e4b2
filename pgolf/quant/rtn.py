"""Per-row symmetric round-to-nearest at int8 / int6 / int5 with fp16 scales: s_r = max|W_r|/qmax,
q = round(W/s_r) in [−qmax, qmax] (qmax = 127, 31, 15), under the seeds' mixed-precision policy
(pgolf.quant.mixed). Registered as rtn-int8, rtn-int6, rtn-int5."""

from __future__ import annotations

from pgolf.components import QUANTIZER_BITS
from pgolf.quant.mixed import mixed_quantizer, quantize_rows_with_clip
from pgolf.quant.registry import QUANTIZERS


def rtn_matrix(w, bits, name=None):
    return quantize_rows_with_clip(w, w.abs().amax(dim=1), bits)


for _bits in QUANTIZER_BITS:
    QUANTIZERS.register(f"rtn-int{_bits}")(mixed_quantizer(f"rtn-int{_bits}", _bits, rtn_matrix))
