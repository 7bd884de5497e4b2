"""Full-Hessian GPTQ (Frantar et al., ICLR 2023), the maths only (docs/techniques.md).

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

from __future__ import annotations

import torch

from pgolf.components import QUANTIZER_BITS
from pgolf.config import ACT_ORDERS
from pgolf.quant.gptq_lite import CLIP_OPTIONS, row_scales, tensor_group
from pgolf.quant.mixed import mixed_quantizer, qmax_for
from pgolf.quant.registry import QUANTIZERS



class GPTQ:
    def __init__(self, columns: int, device: torch.device | str = "cpu") -> None:
        self.hessian = torch.zeros(columns, columns, dtype=torch.float64, device=device)
        self.samples = 0

    @torch.no_grad()
    def add_batch(self, x: torch.Tensor) -> None:
        """x: (..., columns) layer inputs; the running mean of xxᵀ is kept in float64."""
        x = x.reshape(-1, x.size(-1)).to(self.hessian.dtype)
        self.add_gram(x.T @ x, x.size(0))

    @torch.no_grad()
    def add_gram(self, gram: torch.Tensor, n: int) -> None:
        """Fold in xᵀx of `n` inputs computed elsewhere (once for layers that read the same input)."""
        total = self.samples + n
        self.hessian.mul_(self.samples / total).add_(gram, alpha=1.0 / total)
        self.samples = total

    @torch.no_grad()
    def quantize(self, w: torch.Tensor, scale: torch.Tensor, bits: int, block_size: int = 128,
                 damp: float = 0.01, act_order: str = "descending") -> torch.Tensor:
        """Integer weights (rows, cols) on the per-row grid `scale` (rows,), error-compensated."""
        if act_order not in ACT_ORDERS:
            raise ValueError(f"act_order must be one of {', '.join(ACT_ORDERS)}, got {act_order!r}")
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


GPTQ_OPTIONS = ("gptq_embedding", "gptq_act_order", "gptq_block_size", "gptq_damping")


def gptq_matrix(cfg, roles, hessians):
    """One pack's matrix quantizer: full GPTQ on every calibrated matrix. Per-row scales come from the
    GPTQ-lite clip search (or SDClip) first (as #1019/#1207 fix scales before the solve); a matrix
    without a Hessian (no calibration seen) falls back to those scales alone. The tied embedding is
    solved with the output head's Hessian only with `pack.gptq_embedding`."""

    def matrix(w, b, name):
        group = tensor_group(name, roles[name])
        q, scale = row_scales(w, b, cfg, group)
        g = hessians.get(name)
        if group == "embedding" and not cfg.gptq_embedding:
            g = None  # the seeds quantize the embedding without GPTQ
        if g is None or g.hessian.size(0) != w.size(1):
            return q, scale
        return g.quantize(w, scale.float(), b, block_size=cfg.gptq_block_size, damp=cfg.gptq_damping,
                          act_order=cfg.gptq_act_order), scale

    return matrix


for _bits in QUANTIZER_BITS:
    QUANTIZERS.register(f"gptq-int{_bits}")(mixed_quantizer(
        f"gptq-int{_bits}", _bits, None, CLIP_OPTIONS + GPTQ_OPTIONS, needs_hessians=True, bind=gptq_matrix))
