"""One left-to-right evaluation pass composing the selected methods (see methods/base.py).

    prepare: the methods, the pass's own copy of the weights, warm-ups (on random tokens)
    plan: the windows, and chunks (the whole stream unless an `adapt` method cuts it)
    for each chunk:
        score_chunk: for each batch of the chunk's windows (this rank's share):
            logits  = fit method's logits, or the model's (no gradient)
            nll     = mix method's score, or −log softmax(logits)[target]   (scored positions only)
        after_chunk: mix.learn(chunk)   # learns only from tokens already scored
                     adapt.after_chunk(chunk)   # trains only on tokens already scored; never on the last
    finish: totals across ranks, per-position scores, the methods' reports

A window belongs to the chunk holding its first scored position. Chunks are `chunk_tokens`
long, or end where an adapt method's own `cuts` say (phased TTT: at document-prefix boundaries;
the mixer then keeps its own chunks as well, and learns at every end). Windows that carry a
`group` (document windows) are scored group by group, split by length bucket. Every method's
`warmup(model)` runs first, on random tokens; its seconds are reported apart (`setup_seconds`),
as the records report eval time both with and without setup. A fit method's `on_base_changed`
is called when an adapt method changed the weights. The hooks, with their identity defaults, are
declared on `EvalMethod` (methods/base.py). Sums are float64 and all-reduced across ranks
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
from pgolf.evaluate.methods.base import (EvalContext, EvalMethod, batch_tensors, load_methods, softmax_distribution,
                                         softmax_nats)
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
                 layout: Any = None, score_through: int = -1, warmup: bool = True) -> PipelineResult:
    """`time_budget` (seconds): after each chunk the run time is projected from the windows done
    so far; an overrun is reported once in `warnings`, or stops the run with `strict_budget`.
    `layout` (pgolf.evaluate.order.DocumentLayout): the documents' length order and batches when the
    stream is a view re-laid by length. `score_through` ≥ 0 (the audit's reruns): stop after the
    chunk holding every window that scores a target at or before that position — the scores up to
    it are then final (a chunk's windows start scoring inside it, and nothing later is run), the
    totals partial. Not with a view the pass re-lays itself (the audit passes the view's stream).
    `warmup` False: the methods' warm-ups are skipped (they run on random tokens and leave nothing
    behind, tested per method; the audit's reruns skip them, its recorded pass does not)."""
    if limit > 0:
        tokens = tokens[: limit + 1]
    view = scoring_view(tokens, preset, methods, overrides)
    if view is not None:
        if score_through >= 0:
            raise ValueError("score_through needs the stream in scoring order (pass the view's tokens and layout)")
        return _run_in_view(view, model, tables, preset, runtime, methods, overrides, observer, keep_scores,
                            time_budget, strict_budget)
    p = EvalPass(model, tokens, tables, preset, runtime, methods, overrides, observer, keep_scores, time_budget,
                 strict_budget, layout)
    p.prepare(warmup=warmup)
    p.plan()
    last = len(p.chunks) - 1 if score_through < 0 else min(bisect.bisect_right(p.ends, score_through), len(p.chunks) - 1)
    stopped = last < len(p.chunks) - 1
    for k in range(last + 1):
        p.score_chunk(k)
        if k < last or not stopped:  # what the last chunk teaches reaches no score up to score_through
            p.after_chunk(k)
    return p.finish()


class EvalPass:
    """One pass, in the named steps `run_pipeline` calls: prepare (methods, weights, warm-ups), plan
    (windows and chunks), score_chunk (each batch of a chunk, and the audit's counterfactual probe
    where it asks for one), after_chunk (the budget check, the mixer's learning, adaptation), finish
    (totals across ranks, per-position scores, the methods' reports)."""

    def __init__(self, model, tokens, tables, preset, runtime, methods, overrides, observer, keep_scores,
                 time_budget, strict_budget, layout) -> None:
        self.t0 = time.perf_counter()
        self.model, self.tokens, self.tables, self.runtime = model, tokens, tables, runtime
        self.observer, self.keep_scores = observer, keep_scores
        self.time_budget, self.strict_budget = time_budget, strict_budget
        self.warnings: list[str] = []
        self.ctx = EvalContext(tokens=tokens, tables=tables, preset=preset, runtime=runtime,
                               seq_len=preset.eval.seq_len, observer=observer, layout=layout)
        self.by_role = build_methods(methods, self.ctx, overrides)
        self.win = self.ctx.windows_method = self.by_role["windows"]
        if getattr(self.win.cfg, "seq_len", 0):
            self.ctx.seq_len = self.win.cfg.seq_len
        self.prep, self.adapt, self.fit, self.mix = (self.by_role.get(r) for r in ("prepare", "adapt", "fit", "mix"))
        self.n_targets = tokens.size - 1
        self.sums = torch.zeros(3, dtype=torch.float64, device=runtime.device)
        self.scores = np.full(self.n_targets, np.nan) if keep_scores else None
        self.counts = np.zeros(self.n_targets, dtype=np.int32) if keep_scores else None
        batch = getattr(self.fit.cfg, "batch_windows", 0) if self.fit is not None else 0
        self.batch = batch or getattr(self.win.cfg, "batch_windows", 0) or 1
        self.probe_at = getattr(observer, "counterfactual_position", None)
        self.done = 0

    # prepare ----------------------------------------------------------------------------------------
    def prepare(self, warmup: bool = True) -> None:
        """The weights this pass may change are its own copy; the methods warm up (timed apart)."""
        if self.prep is not None or self.adapt is not None:
            self.model = copy.deepcopy(self.model)  # weights change during the pass; the caller's must not
        self.was_training = self.model.training
        self.requires_grad = [p.requires_grad for p in self.model.parameters()]  # TTT freezes some
        self.model.eval()
        # documents in packed rows are cut at the evaluation's context, not the training's (the
        # record's scoring and global TTT cut them at its eval length); finish gives the cut back
        set_context = getattr(self.model, "set_context", None)
        self.restore_context = set_context(self.ctx.seq_len) if set_context is not None else None
        if self.prep is not None:
            self.prep.prepare(self.model)
        setup_t0 = time.perf_counter()
        for m in (self.win, self.adapt, self.fit, self.mix):
            if m is not None and warmup:
                m.warmup(self.model)
        self.setup_seconds = time.perf_counter() - setup_t0

    # plan -------------------------------------------------------------------------------------------
    def plan(self) -> None:
        """The windows, the chunk ends (the adapt method's own cuts, or every chunk_tokens; a mixer keeps
        its chunks too unless a chunking adapt method sets them), each window in the chunk of its first
        scored position."""
        self.windows = self.win.windows(self.tokens.size)
        n = self.n_targets
        self.adapt_ends = chunk_ends(self.adapt, n) if self.adapt is not None else []
        own_cuts = self.adapt is not None and self.adapt.cuts(n) is not None
        mix_ends = chunk_ends(self.mix, n) if self.mix is not None and (self.adapt is None or own_cuts) else []
        self.ends = sorted(set(self.adapt_ends) | set(mix_ends) | {n})
        self.chunks: list[list] = [[] for _ in self.ends]
        for w in self.windows:
            self.chunks[bisect.bisect_right(self.ends, w.start + w.score_from)].append(w)
        starts = self.win.document_starts(self.tokens.size)
        if self.observer is not None and starts is not None and hasattr(self.observer, "on_documents"):
            self.observer.on_documents(starts=starts)

    # score_chunk ------------------------------------------------------------------------------------
    def width_of(self, group) -> int:
        seq = self.ctx.seq_len
        return min(bucket_width(max(w.length for w in group)), seq) if self.win.grouped else seq

    def score_group(self, group, fit_m, mix_m, watch: bool, logits=None):
        """Score a batch of windows with the given fit/mix method states; `watch` lets the observer
        sample the scored distribution. Returns (logits, inputs, targets, positions, nll)."""
        x, y, flat, positions = batch_tensors(self.tokens, group, self.width_of(group), self.runtime.device)
        if fit_m is not None:
            logits = fit_m.logits(self.model, x, y, flat, group)
        if logits is None:
            with torch.no_grad(), autocast_context(self.runtime):
                logits = self.model(x)
        rows = logits.reshape(-1, logits.size(-1)).index_select(0, flat).float()
        targets = y.reshape(-1).index_select(0, flat)
        inputs = x.reshape(-1).index_select(0, flat)
        sel, full = [], None
        if watch and self.observer is not None and hasattr(self.observer, "sample_rows"):
            sel = self.observer.sample_rows(positions)  # the full distribution at sampled rows, as reported
            if len(sel):
                idx = torch.as_tensor(sel, device=rows.device)
                full = (mix_m.distribution(rows[idx], inputs[idx], positions[sel]) if mix_m is not None
                        else softmax_distribution(rows[idx]))
        nll = (mix_m.score(rows, inputs, targets, positions) if mix_m is not None
               else softmax_nats(rows, targets)).double()
        if full is not None:
            at_target = -torch.log(full.gather(1, targets[idx].long()[:, None]).squeeze(1).double())
            self.observer.on_distribution(positions=positions[sel], mass=full.sum(-1).double().cpu().numpy(),
                                          scored=nll[idx].cpu().numpy(), at_target=at_target.cpu().numpy())
        return logits, inputs, targets, positions, nll

    def probe(self, group, logits) -> None:
        """The audit's black-box normalization probe: scores of the stream's last target t for every
        candidate value, each from a copy of the method states as they are now (the probe's stream
        ends at t, so no input depends on it)."""
        t = self.n_targets - 1
        tokens, ctx, fit, mix = self.tokens, self.ctx, self.fit, self.mix
        true = int(tokens[t + 1])
        keep = {id(ctx): ctx, id(tokens): tokens, id(self.model): self.model}
        saved, ctx.observer = ctx.observer, None  # the candidates' updates are not the run's

        def rescore(candidates) -> np.ndarray:
            out = np.empty(len(candidates))
            try:
                for i, v in enumerate(candidates):
                    tokens[t + 1] = v
                    fit_c = copy.deepcopy(fit, dict(keep)) if fit is not None else None
                    mix_c = copy.deepcopy(mix, dict(keep)) if mix is not None else None
                    *_, positions, nll = self.score_group(group, fit_c, mix_c, watch=False,
                                                          logits=None if fit is not None else logits)
                    out[i] = float(nll[int(np.nonzero(positions == t)[0][0])])
            finally:
                tokens[t + 1] = true
            return out

        try:
            self.observer.on_counterfactual(t, rescore)
        finally:
            ctx.observer = saved

    def score_chunk(self, k: int) -> None:
        """Every batch of this rank's share of chunk k, scored and summed."""
        mine = self.win.rank_share(self.chunks[k], self.runtime.rank, self.runtime.world_size)
        scoring = self.adapt.scoring_weights(self.model) if self.adapt is not None else contextlib.nullcontext()
        with scoring:
            for group in batches(mine, self.batch, self.win.grouped):
                logits = None
                if self.probe_at is not None and any(w.start + w.length - 1 == self.probe_at for w in group):
                    if self.fit is None:
                        x = batch_tensors(self.tokens, group, self.width_of(group), self.runtime.device)[0]
                        with torch.no_grad(), autocast_context(self.runtime):
                            logits = self.model(x)
                    self.probe(group, logits)
                _, inputs, targets, positions, nll = self.score_group(group, self.fit, self.mix, watch=True,
                                                                      logits=logits)
                self.sums[0] += nll.sum()
                self.sums[1] += nll.numel()
                self.sums[2] += self.tables.count(inputs, targets, positions).sum().double()
                if self.keep_scores:
                    self.scores[positions] = nll.cpu().numpy()
                    np.add.at(self.counts, positions, 1)
                self.ctx.notify("on_scored", positions=positions, targets=targets, nll=nll)
        self.done += len(self.chunks[k])

    # after_chunk ------------------------------------------------------------------------------------
    def after_chunk(self, k: int) -> None:
        """The time-budget projection, then the mixer's learning and the adapt method's step on what
        chunk k scored (never after the last chunk)."""
        lo, hi = (self.ends[k - 1] if k else 0), self.ends[k]
        last = k == len(self.chunks) - 1
        if self.time_budget > 0 and not self.warnings and not last:
            projected = (time.perf_counter() - self.t0) * len(self.windows) / max(self.done, 1)
            if projected > self.time_budget:
                msg = (f"evaluation will overrun its {self.time_budget:g} s budget: {projected:.0f} s projected "
                       f"after {self.done:,} of {len(self.windows):,} windows")
                if self.strict_budget:
                    raise BudgetError(msg + " (stopped by --strict-budget)")
                self.warnings.append(msg)
        if self.mix is not None:
            self.mix.learn(lo, hi)
        if self.adapt is not None and hi < self.n_targets and hi in self.adapt_ends:
            a = self.adapt_ends.index(hi)
            self.adapt.after_chunk(self.model, self.adapt_ends[a - 1] if a else 0, hi, a, len(self.adapt_ends))
            if self.fit is not None:
                self.fit.on_base_changed(self.model)

    # finish -----------------------------------------------------------------------------------------
    def finish(self) -> PipelineResult:
        if self.restore_context is not None:
            self.restore_context()
        self.model.train(self.was_training)
        for p, flag in zip(self.model.parameters(), self.requires_grad):
            p.requires_grad_(flag)
        all_reduce_sum_(self.sums, self.runtime)
        totals = BpbTotals(nats=float(self.sums[0]), tokens=int(self.sums[1]), bytes=int(self.sums[2]))
        described = [self.by_role[r].describe() for r in ROLE_ORDER if r in self.by_role]
        described[[d["role"] for d in described].index("windows")]["seq_len"] = self.ctx.seq_len
        seconds = time.perf_counter() - self.t0
        return PipelineResult(totals=totals, seconds=seconds, methods=described, scores=self.scores,
                              score_counts=self.counts,
                              extra={"warnings": self.warnings, "setup_seconds": self.setup_seconds,
                                     "eval_seconds_without_setup": seconds - self.setup_seconds})


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
    return None if found is None else found[0].evaluation_view(found[1], tokens)


def in_stream_order(preset: Preset, methods: list[str], overrides: dict[str, dict] | None) -> dict[str, dict]:
    """`overrides` with the windows method told to score its stream as it comes (it is a view already,
    whose layout carries what the view decided: batches and their chunks)."""
    out = {k: dict(v) for k, v in (overrides or {}).items()}
    found = windows_options(preset, methods, overrides)
    if found is not None and hasattr(found[1], "order"):
        out.setdefault(found[0].section, {})["order"] = "stream"
    if found is not None and getattr(found[1], "short_chunks", None):
        out.setdefault(found[0].section, {})["short_chunks"] = []
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
    cuts = method.cuts(n_targets)
    if cuts is not None:
        return sorted({min(int(c), n_targets) for c in cuts} | {n_targets})
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
