"""`doc-sliding`: documents scored independently (docs/techniques.md, "Document-aware evaluation").

The stream is split at BOS; each document is scored in chunks of `chunk_tokens` targets, each
with up to seq_len tokens of that document's own prefix as context (a sliding window that never
crosses a document boundary, stride = the chunk). Documents go in batches of `batch_docs`
consecutive documents: chunk c of every document of a batch is one scoring batch, so a method
that adapts per document (`lora-ttt`) can take one step on chunk c before chunk c+1 is scored.
`order` (pgolf.evaluate.order): "longest-first" (default) is #1855's queue — documents sorted by
length into batches, the batches scored longest first — realised as a view of the stream with the
documents re-laid in that order, which the pipeline scores left to right; "stream" keeps the
stream's own order. Either way a batch is `batch_docs` consecutive documents of what is scored.
`short_chunks` (#2014's TTT_SHORT_SCORE_FIRST_STEPS, off when empty): [[length, chunk], …]; a batch
whose longest document has at most `length` tokens is scored in chunks of `chunk` instead
(pgolf.evaluate.windows). Scoring still comes before each adaptation step; only the steps are finer.
Which chunk a batch gets reads its documents' lengths, as the longest-first order does, so it is
decided the same way: from the whole stream, before scoring, carried by the view's layout (a view
is made for it even in stream order), and checked by the audit to read lengths and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pgolf.config import choice
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.order import ORDERS, EvaluationView, evaluation_view
from pgolf.errors import ConfigError
from pgolf.evaluate.windows import Window, check_short_chunks, document_starts, document_windows, short_batch_chunks


@dataclass
class DocSlidingOptions:
    seq_len: int = 0  # 0 = the preset's eval.seq_len (the longest context a chunk sees)
    chunk_tokens: int = 48
    batch_docs: int = 64
    bos_id: int = 1
    order: str = choice("longest-first", ORDERS)  # #1855's queue | the stream's own
    short_chunks: list[list[int]] = field(default_factory=list)  # [[length, chunk], …] ascending

    def __post_init__(self) -> None:
        if any(len(step) != 2 for step in self.short_chunks):
            raise ConfigError(f"evaluation.doc_sliding.short_chunks: each step is [length, chunk], got {self.short_chunks}")
        check_short_chunks(self.short_chunks)


@register
class DocSliding(EvalMethod):
    name = "doc-sliding"
    role = "windows"
    section = "doc_sliding"
    Options = DocSlidingOptions
    # scoring batches are the windows' groups, each padded only to its longest window
    grouped = True

    @classmethod
    def evaluation_view(cls, cfg: DocSlidingOptions, tokens: np.ndarray) -> EvaluationView | None:
        """The stream re-laid in `order`, with each batch's chunk when short chunks are set; None
        when it is scored as it comes."""
        if cfg.order == "stream" and not cfg.short_chunks:
            return None
        view = evaluation_view(tokens, cfg.bos_id, cfg.order, cfg.batch_docs)
        if cfg.short_chunks:
            view.batch_chunks = short_batch_chunks(view.tokens, cfg.bos_id, cfg.chunk_tokens, cfg.batch_docs,
                                                   view.batch_sizes, cfg.short_chunks)
        return view

    @classmethod
    def window_settings(cls, cfg, window: int, seq_len: int, probe: bool = False) -> dict:
        """Chunks of at most a quarter of the window, and batches of two documents, so that a phase
        boundary (which waits for its batch) can fall inside a short window."""
        out = super().window_settings(cfg, window, seq_len, probe)
        if cfg.batch_docs > 2:
            out["batch_docs"] = 2
        chunk = out.get("chunk_tokens", cfg.chunk_tokens)
        if any(c > chunk for _, c in cfg.short_chunks):  # short documents' chunks no coarser than the rest
            out["short_chunks"] = [[n, min(c, chunk)] for n, c in cfg.short_chunks]
        return out

    def windows(self, n_tokens: int) -> list[Window]:
        layout = self.ctx.layout
        return document_windows(self.ctx.tokens[:n_tokens], self.cfg.bos_id, self.ctx.seq_len,
                                self.cfg.chunk_tokens, self.cfg.batch_docs,
                                layout.batch_sizes if layout is not None else None,
                                layout.batch_chunks if layout is not None else None)

    def rank_share(self, windows: list[Window], rank: int, world: int) -> list[Window]:
        """Rank r scores the document batches b with b mod world = r."""
        if world == 1:
            return windows
        return [w for w in windows if w.batch % world == rank]

    def document_starts(self, n_tokens: int) -> np.ndarray:
        """Where each document's targets begin (for the audit's per-document order check)."""
        return document_starts(self.ctx.tokens[: n_tokens - 1], self.cfg.bos_id)
