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


class EvalMethod:
    name: ClassVar[str]
    role: ClassVar[str]
    section: ClassVar[str]  # the preset's [evaluation.<section>] table
    Options: ClassVar[type]  # dataclass of options
    legal: ClassVar[bool] = True
    why_illegal: ClassVar[str] = ""

    def __init__(self, config: dict[str, Any], ctx: EvalContext) -> None:
        self.cfg = from_dict(self.Options, config, where=f"evaluation.{self.section}")
        self.ctx = ctx

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
