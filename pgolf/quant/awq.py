"""AWQ-lite (#1908; in every May-1 record): a few column groups of the calibrated matrices at more
bits, inside the same GPTQ solve.

Saliency of a matrix's input column j is the input's RMS there times the column's mean |w|:
rms_j = sqrt(H_jj), since the calibration Hessian is H = mean(x xᵀ). A group is `pack.awq_group`
consecutive columns and scores the sum of its columns' saliency. Over *all* matrices GPTQ solves
(candidates: 2-D, at fewer bits than `pack.awq_bits`), the `pack.awq_top` best groups are
protected (the record's code ranks candidates of every matrix together, so `awq_top = 1` is one
group in the whole model). A protected column is quantized on a finer per-row grid — the row's own
clip spread over ±(2^(awq_bits−1) − 1) steps instead of ±qmax — and GPTQ carries its (smaller)
error into the columns after it as for any column.

Stored on the matrix's tensor (any per-row layout), beside its codes: `awq_start` (int16, the
groups' first columns, ascending), `awq_q` (int8, rows × protected columns, in column order) and
`awq_scale` (fp16, one fine step a row). The matrix's own codes keep only the other columns, so no
weight is stored twice (`pgolf.quant.encoding.main_shape`); the decoder puts the columns back.
"""

from __future__ import annotations

import numpy as np
import torch


AWQ_PARTS = ("awq_start", "awq_q", "awq_scale")


def group_scores(w: torch.Tensor, hessian_diag: torch.Tensor, group: int) -> list[tuple[float, int]]:
    """(score, first column) of every whole group of `group` columns of the (rows, cols) `w`."""
    saliency = hessian_diag.double().clamp_min(0).sqrt() * w.double().abs().mean(dim=0)
    groups = w.size(1) // group
    sums = saliency[: groups * group].reshape(groups, group).sum(dim=1)
    return [(float(s), g * group) for g, s in enumerate(sums)]


def select_groups(matrices: dict[str, tuple[torch.Tensor, torch.Tensor]], group: int, top: int) -> dict[str, list[int]]:
    """The `top` groups of largest saliency over every candidate: {name: [first columns, ascending]}.
    `matrices` maps a candidate's name to (its (rows, cols) weights, its Hessian's diagonal). Ties go
    to the earlier name and column, so the choice is deterministic."""
    scored = [(-score, name, start) for name, (w, diag) in sorted(matrices.items())
              for score, start in group_scores(w, diag, group)]
    picked: dict[str, list[int]] = {}
    for _, name, start in sorted(scored)[:top]:
        picked.setdefault(name, []).append(start)
    return {name: sorted(starts) for name, starts in picked.items()}


def protected_columns(cols: int, starts: list[int], group: int) -> torch.Tensor:
    mask = torch.zeros(cols, dtype=torch.bool)
    for s in starts:
        mask[s : s + group] = True
    return mask


def fine_scale(scale: torch.Tensor, bits: int, awq_bits: int) -> torch.Tensor:
    """The protected columns' per-row step: the same clip (scale · qmax) over awq_bits' levels, fp16."""
    levels = ((1 << (bits - 1)) - 1) / ((1 << (awq_bits - 1)) - 1)  # qmax ratio (mixed.qmax_for)
    return (scale.float() * levels).clamp_min(1e-8).half()


def split_protected(q: torch.Tensor, starts: list[int], group: int, scale_fine: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """(the codes of the other columns, the stored AWQ parts) of GPTQ's full (rows, cols) codes."""
    mask = protected_columns(q.size(1), starts, group)
    parts = {"awq_start": np.asarray(starts, dtype=np.int16),
             "awq_q": q[:, mask].to(torch.int8).numpy(),
             "awq_scale": scale_fine.numpy()}
    return q[:, ~mask].contiguous(), parts


def protected_count(parts: dict) -> int:
    """Columns the AWQ parts hold (0 without them)."""
    return int(np.asarray(parts["awq_q"]).shape[1]) if "awq_q" in parts else 0


def insert_protected(main: torch.Tensor, parts: dict) -> torch.Tensor:
    """The full (rows, cols) matrix from the decoded other columns and the protected ones."""
    q = torch.from_numpy(np.array(parts["awq_q"])).float()
    starts = [int(s) for s in np.asarray(parts["awq_start"]).reshape(-1)]
    group = q.size(1) // len(starts)
    rows, cols = main.size(0), main.size(1) + q.size(1)
    mask = protected_columns(cols, starts, group)
    out = torch.empty(rows, cols, dtype=torch.float32)
    out[:, ~mask] = main.float()
    out[:, mask] = q * torch.from_numpy(np.array(parts["awq_scale"])).float()[:, None]
    return out
