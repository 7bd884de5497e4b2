"""Per-row symmetric round-to-nearest at int8 / int6 / int5 with fp16 scales: s_r = max|W_r|/qmax,
q = round(W/s_r) in [−qmax, qmax] (qmax = 127, 31, 15), under the seeds' mixed-precision policy
(pgolf.quant.mixed). Registered as rtn-int8, rtn-int6, rtn-int5."""

from __future__ import annotations

import functools

from pgolf.quant.mixed import encode_mixed, quantize_rows_with_clip
from pgolf.quant.registry import QUANTIZERS


def rtn_matrix(w, bits, name=None):
    return quantize_rows_with_clip(w, w.abs().amax(dim=1), bits)


for _bits in (8, 6, 5):
    QUANTIZERS.register(f"rtn-int{_bits}")(
        functools.partial(lambda state, cfg, roles, b, hessians=None: encode_mixed(state, cfg, roles, b, rtn_matrix), b=_bits))
