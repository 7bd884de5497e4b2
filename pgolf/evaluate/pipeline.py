"""One left-to-right evaluation pass composing the selected methods (see methods/base.py).

    for each chunk (the whole stream unless an `adapt` method cuts it):
        for each batch of the chunk's windows (this rank's contiguous share):
            logits  = fit method's logits, or the model's (no gradient)
            nll     = mix method's score, or −log softmax(logits)[target]   (scored positions only)
        mix.after_chunk(chunk)          # learns only from tokens already scored
        adapt.after_chunk(chunk)        # trains only on tokens already scored; never on the last

A window belongs to the chunk holding its first scored position. Chunks are `chunk_tokens`
long, or end where an adapt method's own `cuts` say (phased TTT: at document-prefix boundaries;
the mixer then keeps its own chunks as well, and learns at every end). Windows that carry a
`group` (document windows) are scored group by group, split by length bucket. Methods with a
`warmup(model)` run it first, on random tokens; its seconds are reported apart (`setup_seconds`),
as the records report eval time both with and without setup. A fit method with `on_base_changed`
is told when an adapt method changed the weights. Sums are float64 and all-reduced across ranks
at the end; per-position scores are kept when `keep_scores` (audit).

An `observer` (the audit's recorder) is told what was scored and every state update, and may
ask for the full distribution at sampled rows. One with a `counterfactual_position` t (the
stream's last target) is handed, at t's batch, a function that scores t for any candidate
target from copies of the methods' current state (the black-box normalization probe).
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pgolf.config import Preset, from_dict
from pgolf.data.bpb import BpbTotals, TorchByteTables
from pgolf.errors import BudgetError, ConfigError
from pgolf.evaluate.methods.base import EvalContext, EvalMethod, batch_tensors, load_methods
from pgolf.runtime import autocast_context
from pgolf.runtime import Runtime, all_reduce_sum_

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
                 time_budget: float = 0.0, strict_budget: bool = False,
                 layout: Any = None) -> PipelineResult:
    """`time_budget` (seconds): after each chunk the run time is projected from the windows done
    so far; an overrun is reported once in `warnings`, or stops the run with `strict_budget`.
    `layout` (pgolf.evaluate.order.DocumentLayout): the documents' length order and batches when the
    stream is a view re-laid by length."""
    if limit > 0:
        tokens = tokens[: limit + 1]
    view = scoring_view(tokens, preset, methods, overrides)
    if view is not None:
        return _run_in_view(view, model, tables, preset, runtime, methods, overrides, observer, keep_scores,
                            time_budget, strict_budget)
    t0 = time.perf_counter()
    warnings: list[str] = []
    ctx = EvalContext(tokens=tokens, tables=tables, preset=preset, runtime=runtime,
                      seq_len=preset.eval.seq_len, observer=observer, layout=layout)
    by_role = build_methods(methods, ctx, overrides)
    win = ctx.windows_method = by_role["windows"]
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
    setup_t0 = time.perf_counter()
    for m in (win, adapt, fit, mix):
        if m is not None and hasattr(m, "warmup"):
            m.warmup(model)
    setup_seconds = time.perf_counter() - setup_t0
    windows = win.windows(tokens.size)
    n_targets = tokens.size - 1
    adapt_ends = chunk_ends(adapt, n_targets) if adapt is not None else []
    own_cuts = adapt is not None and hasattr(adapt, "cuts")
    mix_ends = chunk_ends(mix, n_targets) if mix is not None and (adapt is None or own_cuts) else []
    ends = sorted(set(adapt_ends) | set(mix_ends) | {n_targets})
    n_chunks = len(ends)
    chunks: list[list] = [[] for _ in range(n_chunks)]
    for w in windows:
        chunks[bisect.bisect_right(ends, w.start + w.score_from)].append(w)
    if observer is not None and hasattr(win, "document_starts") and hasattr(observer, "on_documents"):
        observer.on_documents(starts=win.document_starts(tokens.size))

    sums = torch.zeros(3, dtype=torch.float64, device=runtime.device)
    scores = np.full(n_targets, np.nan) if keep_scores else None
    counts = np.zeros(n_targets, dtype=np.int32) if keep_scores else None
    batch = getattr(fit.cfg, "batch_windows", 0) if fit is not None else 0
    batch = batch or getattr(win.cfg, "batch_windows", 0) or 1
    probe_at = getattr(observer, "counterfactual_position", None)

    grouped = getattr(win, "grouped", False)

    def width_of(group) -> int:
        return min(bucket_width(max(w.length for w in group)), ctx.seq_len) if grouped else ctx.seq_len

    def score_group(group, fit_m, mix_m, watch: bool, logits=None):
        """Score a batch of windows with the given fit/mix method states; `watch` lets the
        observer sample the scored distribution. Returns (logits, inputs, targets, positions, nll)."""
        x, y, flat, positions = batch_tensors(tokens, group, width_of(group), runtime.device)
        if fit_m is not None:
            logits = fit_m.logits(model, x, y, flat, group)
        elif logits is None:
            with torch.no_grad(), autocast_context(runtime):
                logits = model(x)
        rows = logits.reshape(-1, logits.size(-1)).index_select(0, flat).float()
        targets = y.reshape(-1).index_select(0, flat)
        inputs = x.reshape(-1).index_select(0, flat)
        sel, full = [], None
        if watch and observer is not None and hasattr(observer, "sample_rows"):
            sel = observer.sample_rows(positions)  # the full distribution at sampled rows, as reported
            if len(sel):
                idx = torch.as_tensor(sel, device=rows.device)
                full = (mix_m.distribution(rows[idx], inputs[idx], positions[sel]) if mix_m is not None
                        else torch.softmax(rows[idx].double(), dim=-1))
        if mix_m is not None:
            nll = mix_m.score(rows, inputs, targets, positions)
        else:
            nll = -torch.log_softmax(rows, dim=-1).gather(1, targets[:, None]).squeeze(1)
        nll = nll.double()
        if full is not None:
            at_target = -torch.log(full.gather(1, targets[idx].long()[:, None]).squeeze(1).double())
            observer.on_distribution(positions=positions[sel], mass=full.sum(-1).double().cpu().numpy(),
                                     scored=nll[idx].cpu().numpy(), at_target=at_target.cpu().numpy())
        return logits, inputs, targets, positions, nll

    def counterfactual(group, logits):
        """Scores of the stream's last target t for every candidate value, each from a copy of the
        method states as they are now (the probe's stream ends at t, so no input depends on it)."""
        t = n_targets - 1
        true = int(tokens[t + 1])
        keep = {id(ctx): ctx, id(tokens): tokens, id(model): model}
        saved, ctx.observer = ctx.observer, None  # the candidates' updates are not the run's

        def rescore(candidates) -> np.ndarray:
            out = np.empty(len(candidates))
            try:
                for i, v in enumerate(candidates):
                    tokens[t + 1] = v
                    fit_c = copy.deepcopy(fit, dict(keep)) if fit is not None else None
                    mix_c = copy.deepcopy(mix, dict(keep)) if mix is not None else None
                    *_, positions, nll = score_group(group, fit_c, mix_c, watch=False,
                                                     logits=None if fit is not None else logits)
                    out[i] = float(nll[int(np.nonzero(positions == t)[0][0])])
            finally:
                tokens[t + 1] = true
            return out

        try:
            observer.on_counterfactual(t, rescore)
        finally:
            ctx.observer = saved

    done = 0
    for k, chunk_windows in enumerate(chunks):
        if hasattr(win, "rank_share"):  # whole documents per rank (per-document state stays on one rank)
            mine = win.rank_share(chunk_windows, runtime.rank, runtime.world_size)
        else:
            lo = len(chunk_windows) * runtime.rank // runtime.world_size
            hi = len(chunk_windows) * (runtime.rank + 1) // runtime.world_size
            mine = chunk_windows[lo:hi]
        scoring = adapt.scoring_weights(model) if hasattr(adapt, "scoring_weights") else contextlib.nullcontext()
        with scoring:
            for group in batches(mine, batch, grouped):
                logits = None
                if probe_at is not None and any(w.start + w.length - 1 == probe_at for w in group):
                    if fit is None:
                        x = batch_tensors(tokens, group, width_of(group), runtime.device)[0]
                        with torch.no_grad(), autocast_context(runtime):
                            logits = model(x)
                    counterfactual(group, logits)
                _, inputs, targets, positions, nll = score_group(group, fit, mix, watch=True, logits=logits)
                sums[0] += nll.sum()
                sums[1] += nll.numel()
                sums[2] += tables.count(inputs, targets, positions).sum().double()
                if keep_scores:
                    scores[positions] = nll.cpu().numpy()
                    np.add.at(counts, positions, 1)
                ctx.notify("on_scored", positions=positions, targets=targets, nll=nll)
        lo_pos, hi_pos = (ends[k - 1] if k else 0), ends[k]
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
        if adapt is not None and hi_pos < n_targets and hi_pos in adapt_ends:
            a = adapt_ends.index(hi_pos)
            adapt.after_chunk(model, adapt_ends[a - 1] if a else 0, hi_pos, a, len(adapt_ends))
            if fit is not None and hasattr(fit, "on_base_changed"):
                fit.on_base_changed(model)
    model.train(was_training)
    for p, flag in zip(model.parameters(), requires_grad):
        p.requires_grad_(flag)
    all_reduce_sum_(sums, runtime)
    totals = BpbTotals(nats=float(sums[0]), tokens=int(sums[1]), bytes=int(sums[2]))
    described = [by_role[r].describe() for r in ROLE_ORDER if r in by_role]
    described[[d["role"] for d in described].index("windows")]["seq_len"] = ctx.seq_len
    seconds = time.perf_counter() - t0
    return PipelineResult(totals=totals, seconds=seconds, methods=described, scores=scores, score_counts=counts,
                          extra={"warnings": warnings, "setup_seconds": setup_seconds,
                                 "eval_seconds_without_setup": seconds - setup_seconds})


def windows_options(preset: Preset, methods: list[str], overrides: dict[str, dict] | None):
    """(class, options) of the pass's windows method, or None when it uses the standard windows."""
    registry = load_methods(list(methods))
    for name in methods:
        cls = registry.get(name)
        if cls.role == "windows":
            return cls, from_dict(cls.Options, method_config(preset, cls, overrides), where=f"evaluation.{cls.section}")
    return None


def scoring_view(tokens: np.ndarray, preset: Preset, methods: list[str], overrides: dict[str, dict] | None):
    """The stream as the pass scores it (pgolf.evaluate.order), or None when it is scored as it comes."""
    found = windows_options(preset, methods, overrides)
    if found is None or not hasattr(found[0], "evaluation_view"):
        return None
    cls, cfg = found
    return cls.evaluation_view(cfg, tokens)


def in_stream_order(preset: Preset, methods: list[str], overrides: dict[str, dict] | None) -> dict[str, dict]:
    """`overrides` with the windows method told to score its stream as it comes (it is a view already)."""
    out = {k: dict(v) for k, v in (overrides or {}).items()}
    found = windows_options(preset, methods, overrides)
    if found is not None and hasattr(found[0], "evaluation_view"):
        out.setdefault(found[0].section, {})["order"] = "stream"
    return out


def _run_in_view(view, model, tables, preset, runtime, methods, overrides, observer, keep_scores, time_budget,
                 strict_budget) -> PipelineResult:
    """Score the view left to right; per-position scores come back at their original positions (an
    observer sees the view's positions: the order it checks is the order of scoring)."""
    result = run_pipeline(model, view.tokens, tables.reordered(view.source), preset, runtime, methods,
                          overrides=in_stream_order(preset, methods, overrides), observer=observer,
                          keep_scores=keep_scores, time_budget=time_budget, strict_budget=strict_budget,
                          layout=view.layout)
    if keep_scores:
        where = view.original_positions(np.arange(result.scores.size))
        scores, counts = np.full_like(result.scores, np.nan), np.zeros_like(result.score_counts)
        scores[where], counts[where] = result.scores, result.score_counts
        result.scores, result.score_counts = scores, counts
    for d in result.methods:
        if d["role"] == "windows":
            d["order"] = view.order
    return result


def chunk_ends(method: EvalMethod, n_targets: int) -> list[int]:
    """Where `method` wants the stream cut (ends of its chunks, ascending, the last = n_targets)."""
    if hasattr(method, "cuts"):
        return sorted({min(int(c), n_targets) for c in method.cuts(n_targets)} | {n_targets})
    size = method.chunk_tokens
    return list(range(size, n_targets, size)) + [n_targets]


def batches(windows: list, size: int, grouped: bool):
    """Consecutive windows in batches of `size`; grouped windows: each group split by length
    bucket (the next power of two), so that a window runs at a width fixed by its own length —
    never by its neighbours', which would let a later document change an earlier score's
    floating-point rounding — and short early chunks are not padded to the full context."""
    if not grouped:
        for b in range(0, len(windows), size):
            yield windows[b : b + size]
        return
    start = 0
    for i in range(1, len(windows) + 1):
        if i == len(windows) or windows[i].group != windows[start].group:
            by_width: dict[int, list] = {}
            for w in windows[start:i]:
                by_width.setdefault(bucket_width(w.length), []).append(w)
            for width in sorted(by_width):
                yield by_width[width]
            start = i


def bucket_width(length: int) -> int:
    return 1 << max(length - 1, 0).bit_length()
