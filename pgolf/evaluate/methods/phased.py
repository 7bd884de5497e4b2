"""`phased`: phased score-first TTT — global SGD on documents already scored (docs/techniques.md, F2/F3).

The prefix of `prefix_docs` documents is split into `phases` (phase k ends at document
⌊k·P/phases⌋, #1855's boundaries). With document windows a phase waits for the end of the batch
that holds its boundary document (`boundary_at = "batch"`, the record: its queue checks the count
after each batch); the base model then takes an SGD pass over `boundary` of the documents scored so
far — shortest first, the first `boundary` of them in the record's length order, which drops the
longest of a batch that ran past the boundary (what the record's code does) — and scoring resumes
with the updated weights. Phases are cumulative: phase k re-trains on phase 1…k's documents. With
`lora-ttt` the adapters are rebuilt after each phase. `boundary_at = "document"` cuts at the boundary
document itself and trains on every document before it (with stream order: the stream's prefix).
With `prefix_tokens` > 0 (what the audit uses on its short window) phase k begins at the first
document (batch) start at or after k·prefix_tokens/phases and trains on everything scored.

One pass, as the record's global TTT: the chosen documents' tokens, each with the BOS that follows
it (its last target), laid end to end; cut into `chunk_tokens` chunks, each of whole `seq_len`
sequences shared among the ranks (`batch_seqs` per forward), one SGD step per chunk and epoch
(momentum, gradient clipping, gradients averaged over ranks), LR on a cosine from `lr` towards 0.
`skip_last_chunk` (the record's): the pass's last chunk is not trained and the cosine runs over the
other n−1 (False: every chunk trains, cosine over all n). `fresh_optimizer` (the record's): a new SGD
(no momentum carried) per phase (False: one optimizer for all phases). A model with document
isolation sees the sequences as one packed row (documents apart, cut as its `max_segment` says),
as the record's varlen attention; otherwise as rows of `seq_len`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from pgolf.config import choice
from pgolf.evaluate.methods.adaptation import make_optimizer, trainable_parameters
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.windows import document_batches, document_starts
from pgolf.runtime import autocast_context

BOUNDARIES = ("batch", "document")


@dataclass
class PhasedOptions:
    phases: int = 3
    prefix_docs: int = 2500
    prefix_tokens: int = 0  # > 0: boundaries by tokens (at the next document start) instead of documents
    bos_id: int = 1
    lr: float = 0.001
    momentum: float = 0.9
    epochs: int = 1
    chunk_tokens: int = 32_768  # tokens per SGD step
    seq_len: int = 0  # 0 = the evaluation's seq_len
    batch_seqs: int = 32  # sequences per forward (a rank's share of a chunk, in pieces of this many)
    grad_clip: float = 1.0
    boundary_at: str = choice("batch", BOUNDARIES)  # #1855's | at the document
    skip_last_chunk: bool = True  # #1855: the last chunk untrained, cosine over the other n−1
    fresh_optimizer: bool = True  # #1855: a new SGD each phase


def cosine(lr: float, i: int, n: int) -> float:
    return lr * 0.5 * (1 + np.cos(np.pi * i / max(n, 1)))


@dataclass
class Phase:
    cut: int  # target position where scoring resumes with the new weights
    documents: int  # how many scored documents it trains on (0: all of them)


@register
class PhasedTTT(EvalMethod):
    name = "phased"
    role = "adapt"
    section = "phased"
    Options = PhasedOptions

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        self._phases: dict[int, Phase] = {}
        self.steps = 0
        self.phases_done = 0
        self.trained = []  # per phase: documents and tokens of its pass

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    def _batch_starts(self, n_docs: int) -> np.ndarray:
        """The documents a phase may begin at: every one, or with document windows (boundary_at
        "batch") the first of each batch — the view's queue batches, else batch_docs apiece."""
        win = self.ctx.windows_method
        if self.cfg.boundary_at == "batch" and getattr(win, "grouped", False):
            sizes = getattr(self.ctx.layout, "batch_sizes", None)
            return np.array([b.start for b in document_batches(n_docs, int(win.cfg.batch_docs), sizes)] + [n_docs])
        return np.arange(n_docs + 1)

    def cuts(self, n_targets: int) -> list[int]:
        """Where each phase begins: a document start (a batch start with document windows)."""
        starts = document_starts(self.ctx.tokens[:n_targets], self.cfg.bos_id)
        batch_starts = self._batch_starts(starts.size)
        self._phases = {}
        for k in range(1, self.cfg.phases + 1):
            if self.cfg.prefix_tokens > 0:
                idx = int(np.searchsorted(starts, k * self.cfg.prefix_tokens // self.cfg.phases, side="left"))
                documents = 0
            else:
                documents = self.cfg.prefix_docs * k // self.cfg.phases
                idx = documents
            idx = int(batch_starts[min(np.searchsorted(batch_starts, idx, side="left"), batch_starts.size - 1)])
            if 0 < idx < starts.size:
                cut = int(starts[idx])
                phase = self._phases.setdefault(cut, Phase(cut, documents))
                if documents == 0 or phase.documents == 0:
                    phase.documents = 0
                else:
                    phase.documents = max(phase.documents, documents)
        return sorted(self._phases)

    @classmethod
    def window_settings(cls, cfg, window: int, seq_len: int, probe: bool = False) -> dict:
        """All phases inside the window: boundaries by tokens over its first three quarters. A
        single phase (#2014's) is audited as two: one update is not enough to see it adapt and score
        on (the coverage check's rule), and a second phase runs the same code on more scored text."""
        out = {"prefix_tokens": window * 3 // 4, "prefix_docs": 0}
        if cfg.phases < 2:
            out["phases"] = 2
        if cfg.chunk_tokens > window // 4:
            out["chunk_tokens"] = max(window // 4, 16)
        if (cfg.seq_len or seq_len) > out.get("chunk_tokens", cfg.chunk_tokens) // 2:
            out["seq_len"] = max(out.get("chunk_tokens", cfg.chunk_tokens) // 2, 8)
        return out

    def _documents(self, hi: int, count: int) -> np.ndarray:
        """The scored documents (starting before `hi`) a phase trains on, in training order."""
        starts = document_starts(self.ctx.tokens[: self.ctx.tokens.size - 1], self.cfg.bos_id)
        scored = int(np.searchsorted(starts, hi, side="left"))
        given = np.asarray(self.ctx.layout.rank if self.ctx.layout is not None else [], dtype=np.int64)
        # documents the given ranks do not cover (none, or an audit's perturbed tail) follow in stream order
        rank = np.concatenate([given[:scored], given.size + np.arange(max(scored - given.size, 0))])
        chosen = np.argsort(rank, kind="stable")
        return chosen[:count] if count > 0 else chosen

    def _tokens_of(self, docs: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """The documents' tokens, each with the token after it (the BOS its last target predicts),
        end to end; and their target spans."""
        tokens = self.ctx.tokens
        starts = document_starts(tokens[: tokens.size - 1], self.cfg.bos_id)
        ends = np.append(starts[1:], tokens.size - 1)
        spans = [(int(starts[d]), int(ends[d])) for d in docs]
        return np.concatenate([tokens[a : b + 1] for a, b in spans]), spans

    def after_chunk(self, model, lo: int, hi: int, k: int, n_chunks: int) -> None:
        """Every document before `hi` has been scored: a pass over the phase's documents."""
        phase = self._phases[hi]
        docs = self._documents(hi, phase.documents)
        stream, spans = self._tokens_of(docs)
        params = [p for _, p in trainable_parameters(model)]
        if self.cfg.fresh_optimizer or getattr(self, "_opt", None) is None:
            self._opt = make_optimizer(params, "sgd", self.cfg.lr, self.cfg.momentum, [0.9, 0.999], 0.0)
        for p in params:
            p.requires_grad_(True)
        self.steps += self._one_pass(model, stream, params)
        self.phases_done += 1
        self.trained.append({"documents": int(docs.size), "tokens": int(stream.size)})
        self.ctx.notify("on_update", method=self.name, state="weights", spans=spans, used_from=hi)

    def _one_pass(self, model, stream: np.ndarray, params) -> int:
        runtime = self.ctx.runtime
        seq = self.cfg.seq_len or self.ctx.seq_len
        total = stream.size - 1
        n_chunks = -(-total // self.cfg.chunk_tokens)
        trained_chunks = n_chunks - 1 if self.cfg.skip_last_chunk else n_chunks
        base = getattr(model, "_orig_mod", model)
        packed = "doc_isolation" in getattr(base, "addons", {})
        data = torch.from_numpy(stream.astype(np.int64)).to(runtime.device)
        was_training = model.training
        model.train()
        steps = 0
        for ci in range(trained_chunks):
            # the record: lr·½(1 + cos(π·ci / (n−1))) over chunks 0…n−2; without the skip, over all n
            for g in self._opt.param_groups:
                g["lr"] = cosine(self.cfg.lr, ci, trained_chunks)
            lo = ci * self.cfg.chunk_tokens
            seqs = (min(lo + self.cfg.chunk_tokens, total) - lo) // seq
            if seqs <= 0:
                continue
            first = seqs * runtime.rank // runtime.world_size
            last = seqs * (runtime.rank + 1) // runtime.world_size
            widest = -(-seqs // runtime.world_size)  # every rank takes as many steps (collectives match)
            for _ in range(self.cfg.epochs):
                for j in range(0, widest, self.cfg.batch_seqs):
                    s, e = first + j, min(first + j + self.cfg.batch_seqs, last)
                    self._opt.zero_grad(set_to_none=True)
                    if e > s:
                        x = data[lo + s * seq : lo + e * seq]
                        y = data[lo + s * seq + 1 : lo + e * seq + 1]
                        shape = (1, -1) if packed else (-1, seq)
                        with torch.enable_grad(), autocast_context(runtime):
                            loss = model(x.view(shape), y.view(shape))
                        loss.backward()
                    if runtime.distributed:
                        for p in params:
                            if p.grad is None:
                                p.grad = torch.zeros_like(p)
                            dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
                    if self.cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
                    self._opt.step()
                    steps += 1
        model.train(was_training)
        return steps

    def describe(self) -> dict:
        out = super().describe()
        if self.phases_done:
            out["steps"] = self.steps
            out["phases_done"] = self.phases_done
            out["trained"] = self.trained
        return out
