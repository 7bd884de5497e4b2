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
from pgolf.quant.awq import fine_scale, protected_columns, select_groups, split_protected
from pgolf.quant.mixed import kept_float, matrix_bits_of, mixed_quantizer, qmax_for
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
                 damp: float = 0.01, act_order: str = "descending", fine: torch.Tensor | None = None,
                 fine_scale: torch.Tensor | None = None, fine_bits: int = 8) -> torch.Tensor:
        """Integer weights (rows, cols) on the per-row grid `scale` (rows,), error-compensated. The
        columns of the boolean mask `fine` (AWQ-lite, pgolf.quant.awq) use the grid `fine_scale` at
        `fine_bits` instead."""
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
        is_fine = torch.zeros(cols, dtype=torch.bool) if fine is None else fine.clone()
        if perm is not None:
            is_fine = is_fine[perm]
        s_fine = s if fine_scale is None else fine_scale.to(torch.float64)
        qmax_fine = qmax_for(fine_bits)
        Q = torch.zeros_like(W)
        for i1 in range(0, cols, block_size):
            i2 = min(i1 + block_size, cols)
            W1 = W[:, i1:i2].clone()
            E1 = torch.zeros_like(W1)
            U1 = U[i1:i2, i1:i2]
            for i in range(i2 - i1):
                col = W1[:, i]
                step, limit = (s_fine, qmax_fine) if is_fine[i1 + i] else (s, qmax)
                q = torch.clamp(torch.round(col / step), -limit, limit)
                Q[:, i1 + i] = q
                err = (col - q * step) / U1[i, i]
                W1[:, i:] -= err[:, None] * U1[i, i:][None, :]
                E1[:, i] = err
            W[:, i2:] -= E1 @ U[i1:i2, i2:]
        if perm is not None:
            Q = Q[:, torch.argsort(perm)]
        return Q.to(torch.int16)


GPTQ_OPTIONS = ("gptq_embedding", "gptq_act_order", "gptq_block_size", "gptq_damping",
                "awq_top", "awq_group", "awq_bits")


def _solver(name: str, w_cols: int, role: str, cfg, hessians) -> GPTQ | None:
    """The Hessian GPTQ solves a matrix with, or None (no calibration seen for it; the tied embedding
    without `pack.gptq_embedding`, as the seeds quantize it)."""
    g = hessians.get(name)
    if tensor_group(name, role) == "embedding" and not cfg.gptq_embedding:
        return None
    return g if g is not None and g.hessian.size(0) == w_cols else None


def awq_candidates(state, cfg, roles, hessians, matrix_bits: int) -> dict:
    """Matrices AWQ-lite may protect groups of: those GPTQ solves at fewer bits than `awq_bits`,
    with their weights as the policy flattens them and their Hessian's diagonal."""
    out = {}
    for name, t in state.items():
        role = roles.get(name)
        if role is None or kept_float(tuple(t.shape), t.is_floating_point(), role, cfg) is not None:
            continue
        w = t.detach().float().reshape(t.shape[0], -1)
        g = _solver(name, w.size(1), role, cfg, hessians)
        if g is not None and matrix_bits_of(role, cfg, matrix_bits) < cfg.awq_bits and w.size(1) >= cfg.awq_group:
            out[name] = (w, torch.diag(g.hessian))
    return out


def gptq_matrix(cfg, roles, hessians, state=None, matrix_bits: int = 6):
    """One pack's matrix quantizer: full GPTQ on every calibrated matrix. Per-row scales come from the
    GPTQ-lite clip search (or SDClip) first (as #1019/#1207 fix scales before the solve); a matrix
    without a Hessian (no calibration seen) falls back to those scales alone. The tied embedding is
    solved with the output head's Hessian only with `pack.gptq_embedding`. With `pack.awq_top`, the
    AWQ-lite groups are chosen over all matrices first and solved on their finer grid."""
    protected: dict[str, list[int]] = {}
    if cfg.awq_top and state is not None:
        protected = select_groups(awq_candidates(state, cfg, roles, hessians, matrix_bits), cfg.awq_group,
                                  cfg.awq_top)

    def matrix(w, b, name):
        q, scale = row_scales(w, b, cfg, tensor_group(name, roles[name]))
        g = _solver(name, w.size(1), roles[name], cfg, hessians)
        if g is None:
            return q, scale
        options = dict(block_size=cfg.gptq_block_size, damp=cfg.gptq_damping, act_order=cfg.gptq_act_order)
        starts = protected.get(name)
        if not starts:
            return g.quantize(w, scale.float(), b, **options), scale
        fine = fine_scale(scale, b, cfg.awq_bits)
        q = g.quantize(w, scale.float(), b, fine=protected_columns(w.size(1), starts, cfg.awq_group),
                       fine_scale=fine.float(), fine_bits=cfg.awq_bits, **options)
        main, parts = split_protected(q, starts, cfg.awq_group, fine)
        return main, scale, parts

    return matrix


for _bits in QUANTIZER_BITS:
    QUANTIZERS.register(f"gptq-int{_bits}")(mixed_quantizer(
        f"gptq-int{_bits}", _bits, None, CLIP_OPTIONS + GPTQ_OPTIONS, needs_hessians=True, bind=gptq_matrix))
