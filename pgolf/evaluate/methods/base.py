"""The contract between the evaluation pipeline and one evaluation-time method.

A method has one *role*, which says where the pipeline calls it during its single left-to-right
pass over the validation stream:

- ``windows``  which windows are run and which positions scored (standard, sliding);
- ``prepare``  runs once before scoring (only the illegal pre-quant TTT fixture);
- ``adapt``    cuts the stream into chunks; after a chunk is fully scored it may train on it (TTT);
- ``fit``      computes a batch's logits itself, e.g. by fitting a delta first (SLOT);
- ``mix``      turns the model's distribution into the scored one and learns from scored tokens
               (Hedge).

Each method reads its options from the preset's ``[evaluation.<section>]`` table into its own
dataclass, its ``Options`` (unknown keys are rejected), and reports them in the results. ``legal``
is read from `pgolf.components.ILLEGAL_METHODS` when the class registers; the audit (`pgolf
audit`) checks that claim by experiment.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from pgolf.components import ILLEGAL_METHODS
from pgolf.config import Preset, from_dict
from pgolf.data.bpb import TorchByteTables
from pgolf.registry import Registry
from pgolf.runtime import Runtime


@dataclass
class EvalContext:
    tokens: np.ndarray  # the validation stream (uint16)
    tables: TorchByteTables
    preset: Preset
    runtime: Runtime
    seq_len: int
    observer: Any = None  # the audit's recorder, or None
    windows_method: Any = None  # the pass's windows method (a fit method may need its documents)
    # the documents' length order and batches when the stream is a view re-laid by length
    # (pgolf.evaluate.order.DocumentLayout); None: the stream's own order, batches of batch_docs
    layout: Any = None
    log: Any = field(default=None)

    def notify(self, event: str, **info: Any) -> None:
        """Tell the audit's recorder what happened. `on_update(method, state, spans, used_from)`:
        state derived from the targets at positions in `spans` ([first, last) pairs) will be used
        to score positions ≥ `used_from`."""
        if self.observer is not None:
            getattr(self.observer, event)(**info)


def softmax_nats(rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−log softmax(logits)[target]: the score of a pass without a mixer."""
    return -torch.log_softmax(rows, dim=-1).gather(1, targets[:, None]).squeeze(1)


def softmax_distribution(rows: torch.Tensor) -> torch.Tensor:
    return torch.softmax(rows.double(), dim=-1)


class EvalMethod:
    """The hooks below are every call the pipeline makes; each has an identity default, so a method
    defines only those of its role (as an add-on defines its hooks, pgolf.model.addons.base)."""

    name: ClassVar[str]
    role: ClassVar[str]
    section: ClassVar[str]  # the preset's [evaluation.<section>] table
    Options: ClassVar[type]  # dataclass of options
    legal: ClassVar[bool] = True
    why_illegal: ClassVar[str] = ""
    grouped: ClassVar[bool] = False  # windows: score the windows' groups as batches (document windows)

    def __init__(self, config: dict[str, Any], ctx: EvalContext) -> None:
        self.cfg = from_dict(self.Options, config, where=f"evaluation.{self.section}")
        self.ctx = ctx

    # windows ------------------------------------------------------------------------------------
    @classmethod
    def evaluation_view(cls, cfg: Any, tokens: np.ndarray):
        """The stream re-laid in the order it is scored (pgolf.evaluate.order); None: as it comes."""
        return None

    def windows(self, n_tokens: int) -> list:
        raise NotImplementedError(f"{self.name} is a {self.role} method, not a windows method")

    def rank_share(self, windows: list, rank: int, world: int) -> list:
        """The windows this rank scores: a contiguous share."""
        lo, hi = len(windows) * rank // world, len(windows) * (rank + 1) // world
        return windows[lo:hi]

    def document_starts(self, n_tokens: int) -> np.ndarray | None:
        """Where each document's targets begin, for document windows (None: not document windows)."""
        return None

    # every role ------------------------------------------------------------------------------------
    def warmup(self, model) -> None:
        """Run once before scoring, on random tokens only (compilation); leaves no state behind."""

    # prepare ---------------------------------------------------------------------------------------
    def prepare(self, model) -> None:
        """Change the weights before scoring (only the illegal pre-quant TTT fixture does)."""

    # adapt -----------------------------------------------------------------------------------------
    @property
    def chunk_tokens(self) -> int:
        return int(getattr(self.cfg, "chunk_tokens", 0))

    def cuts(self, n_targets: int) -> list[int] | None:
        """Where to cut the stream into chunks (None: every `chunk_tokens`)."""
        return None

    def scoring_weights(self, model):
        """A context to score a chunk in (a Polyak copy of the weights swapped in)."""
        return contextlib.nullcontext()

    def after_chunk(self, model, lo: int, hi: int, k: int, n_chunks: int) -> None:
        """Targets lo…hi−1, chunk k of n, are scored: adapt on them."""

    # fit -------------------------------------------------------------------------------------------
    def logits(self, model, x, y, flat, group) -> torch.Tensor | None:
        """A batch's logits computed by the method (None: the model's own, without gradient)."""
        return None

    def on_base_changed(self, model) -> None:
        """An adapt method changed the weights."""

    # mix -------------------------------------------------------------------------------------------
    def score(self, rows: torch.Tensor, inputs, targets, positions) -> torch.Tensor:
        """Nats of the targets under the scored distribution (default: the model's)."""
        return softmax_nats(rows, targets)

    def distribution(self, rows: torch.Tensor, inputs, positions) -> torch.Tensor:
        """The full scored distribution at rows (default: the model's, in float64)."""
        return softmax_distribution(rows)

    def learn(self, lo: int, hi: int) -> None:
        """Targets lo…hi−1 are scored: a mixer learns from them."""

    @classmethod
    def warmup_tokens(cls, cfg: Any) -> int:
        """Targets the method counts before its adaptation changes any score (0: from its first update)."""
        return 0

    @classmethod
    def window_settings(cls, cfg: Any, window: int, seq_len: int, probe: bool = False) -> dict[str, Any]:
        """Option changes the audit makes so that the method updates its state at least twice inside
        `window` targets (chunks of at most a quarter of it); `probe`: also past its warm-up, for the
        black-box normalization probe's few hundred targets. Empty when nothing needs to shrink."""
        chunk = getattr(cfg, "chunk_tokens", 0)
        if chunk and chunk > window // 4:
            return {"chunk_tokens": max(window // 4, 16)}
        return {}

    def describe(self) -> dict[str, Any]:
        out = {"method": self.name, "role": self.role, "legal_by_design": self.legal, **asdict(self.cfg)}
        if not self.legal:
            out["why_illegal"] = self.why_illegal
        return out


METHODS: Registry[type[EvalMethod]] = Registry("evaluation method")


def register(cls: type[EvalMethod]) -> type[EvalMethod]:
    cls.legal = cls.name not in ILLEGAL_METHODS
    if not cls.legal and not cls.why_illegal:
        raise TypeError(f"evaluation method {cls.name!r} is illegal by design and must say why (why_illegal)")
    return METHODS.register(cls.name)(cls)


def load_methods(names: list[str] | None = None) -> Registry[type[EvalMethod]]:
    """Import the modules defining `names` (all methods when None); already-defined ones (e.g. in
    an exported single file) are used as they are."""
    return METHODS.load(names)


def batch_tensors(tokens: np.ndarray, windows, seq_len: int, device: torch.device):
    """Inputs and targets of a batch of windows, padded to seq_len, and the flat indices
    (b·seq_len + j) and stream positions of the positions they score."""
    x = np.zeros((len(windows), seq_len), dtype=np.int64)
    y = np.zeros((len(windows), seq_len), dtype=np.int64)
    flat, positions = [], []
    for b, w in enumerate(windows):
        x[b, : w.length] = tokens[w.start : w.start + w.length]
        y[b, : w.length] = tokens[w.start + 1 : w.start + w.length + 1]
        j = np.arange(w.score_from, w.length)
        flat.append(b * seq_len + j)
        positions.append(w.start + j)
    flat_idx = torch.from_numpy(np.concatenate(flat)).to(device)
    return (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device), flat_idx,
            np.concatenate(positions))
