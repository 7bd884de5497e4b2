"""The order in which an evaluation scores the validation documents (doc-sliding's `order`).

`stream`: documents as they come. `longest-first`: #1855's queue — documents sorted by length
(stable, shortest first), cut into batches of `batch_docs` in that order, and the batches run
longest first (by their longest document; ties keep the ascending order); inside a batch the
documents stay shortest first, which is the LoRA slot each one takes. GPUs then meet the long,
slow batches first, and phased TTT's prefix is made of the longest documents.

An order other than `stream` is realised as a *view*: the documents' token blocks laid end to end
in the evaluation order, which the pipeline then scores left to right exactly as it scores any
stream. Within the view every rule of score-first evaluation, and every check of the audit, reads
as usual ("earlier" means earlier in the evaluation); what the order itself uses from the future
is each document's length, never its content (the audit checks that by experiment). Scores map
back to the original positions through `source`.

A document's block runs from its BOS to the token before the next BOS, so every target keeps its
own input, and the last target of a block is still "predict the next BOS". The stream's final
document has no BOS after it and one target fewer; placed inside the view it would gain a target
the stream does not have, so it goes last, a batch of its own (the record sorts it with the others —
the one place the view departs from its queue; docs/techniques.md). Likewise a stream that does not
begin with a BOS keeps its first, partial document first, alone. The view keeps the queue's batches
(`batch_sizes`): its one short batch is the longest documents', scored first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgolf.evaluate.windows import document_starts

ORDERS = ("longest-first", "stream")


@dataclass
class DocumentLayout:
    """What a view knows of its documents beyond their tokens: each one's place in shortest-first
    order (phased TTT trains on the shortest scored ones) and the sizes of the batches they are
    scored in, in order (the record's queue: its one short batch holds the longest documents)."""

    rank: np.ndarray
    batch_sizes: np.ndarray
    batch_chunks: np.ndarray | None = None  # each batch's chunk (short-document chunks), None: the usual


@dataclass
class EvaluationView:
    tokens: np.ndarray  # the stream as scored: document blocks in evaluation order
    source: np.ndarray  # int64: the original position of every token of `tokens`
    length_rank: np.ndarray  # per document of the view: its index in shortest-first order
    order: str
    batch_sizes: np.ndarray | None = None  # documents per batch, in view order (None: batch_docs each)
    batch_chunks: np.ndarray | None = None  # each batch's chunk, from its longest document's length

    @property
    def layout(self) -> DocumentLayout:
        return DocumentLayout(self.length_rank, self.batch_sizes, self.batch_chunks)

    def original_positions(self, positions: np.ndarray) -> np.ndarray:
        """Target positions of the view -> the same targets' positions in the original stream (a
        target keeps its input token, so it maps through its input's position)."""
        return self.source[np.asarray(positions)]


def longest_first_batches(lengths: np.ndarray, batch_docs: int) -> list[np.ndarray]:
    """#1855's queue: document indices per batch, in the order the batches are scored."""
    ascending = np.argsort(lengths, kind="stable")
    batches = [ascending[i : i + batch_docs] for i in range(0, ascending.size, batch_docs)]
    longest = [int(lengths[b].max()) for b in batches]
    order = sorted(range(len(batches)), key=lambda i: -longest[i])  # stable: ties stay ascending
    return [batches[i] for i in order]


def evaluation_view(tokens: np.ndarray, bos_id: int, order: str, batch_docs: int) -> EvaluationView:
    """The stream's documents re-laid in `order` (see the module docstring)."""
    n = tokens.size
    starts = document_starts(tokens[: max(n - 1, 1)], bos_id)
    ends = np.append(starts[1:], n)  # block d: tokens starts[d] .. ends[d]-1
    if order == "stream" or starts.size <= 1:
        return EvaluationView(tokens, np.arange(n, dtype=np.int64), np.arange(starts.size), order)
    # Blocks that begin with a BOS and are followed by one take part in the order; a first block
    # without a BOS (a stream that starts mid-document) stays first, the final block stays last.
    head = 0 if tokens[0] == bos_id else 1
    last = starts.size - 1
    sortable = np.arange(head, last)
    targets = ends[sortable] - starts[sortable]  # the record's document length is this + 1: same order
    batches = [sortable[b] for b in longest_first_batches(targets, batch_docs)]
    queue = np.concatenate([np.arange(head)] + batches + [np.array([last])])
    sizes = np.array(([head] if head else []) + [b.size for b in batches] + [1], dtype=np.int64)
    rank = np.empty(starts.size, dtype=np.int64)
    rank[:head] = -1
    rank[sortable[np.argsort(targets, kind="stable")]] = np.arange(sortable.size)
    rank[last] = sortable.size
    source = np.concatenate([np.arange(starts[d], ends[d]) for d in queue]).astype(np.int64)
    return EvaluationView(tokens[source], source, rank[queue], order, sizes)
