"""`lora-ttt`: document-independent batched LoRA test-time training (docs/techniques.md, F1/F4).

Used with the `doc-sliding` windows: each document is scored chunk by chunk, and every document of
a batch has its own low-rank adapters (batched: A ∈ R^{S×r×in}, B ∈ R^{S×out×r}, one slot per
document of the batch). For each scoring batch (chunk c of every document of a batch) the logits
come from the model with each document's adapters; they are returned for scoring as they are, and
only then one AdamW step per document is taken on the mean loss of the chunk it just scored. So
chunk c+1 of a document is scored by adapters trained on its chunks 0…c, and nothing else: slots
never mix documents, the optimizer keeps per-slot step counts, there is no cross-document clipping.

`reset` says when a slot starts over. "batch" (default, what #1855's code does): when a batch of
documents begins, every slot's B and every Adam moment and step count (A's too) go to zero; one
AdamW step per chunk then updates every slot of the batch — its loss the sum of each document's
mean over the chunk, a document's last chunk left out (nothing of it is scored later), so slots
whose document is done or idle see a zero gradient and only their weight decay. (The record also
gives its one smaller batch, the queue's last, fresh adapters; here it keeps A warm like the others:
whether a batch is short depends on documents not yet read.) "document" (pgolf's earlier rule): a
slot restarts at its document's first chunk (B and B's moments only), each step updates the slots
that scored in it, a document's last chunk trains too.

Adapters (`targets`): "q", "k", "v" add to the attention projections; "o" and "mlp" are parallel
adapters from a block's normalised input to its attention / MLP output; "head" adds to the logits
before the softcap. Each call of a module within one forward gets its own adapter, so a repeated
block (depth recurrence) adapts per virtual layer. Output scale α/r; B starts at zero; A at the
usual LoRA init. `warm_start_a` (F4): at a document's first chunk only its slot's B (and B's
optimizer state) is reset; A keeps what it learned from the slot's earlier documents (all earlier
in the stream, all scored). After a phased-TTT global step the adapters are rebuilt from scratch.

`warmup(model)` runs `warmup_steps` score-and-step rounds on random tokens (never validation
tokens) and then discards every adapter and optimizer state: on a GPU this is where compilation
and autotuning happen; its seconds are reported as setup, apart from the evaluation.

The optimizer is written here rather than taken from torch.optim: AdamW keeps one step count per
tensor, and a slot that restarts on a new document needs its own bias correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from pgolf.config import choice
from pgolf.errors import ConfigError
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.runtime import autocast_context

TARGETS = ("q", "k", "v", "o", "mlp", "head")
RESETS = ("batch", "document")
ACTIVE = "_pgolf_lora_active"  # model attribute: the LoRA method whose adapters the hooks apply now


@dataclass
class LoraTTTOptions:
    rank: int = 80
    alpha: float = 144.0
    targets: list[str] = choice(list(TARGETS), TARGETS)
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])
    eps: float = 1e-10
    weight_decay: float = 0.5
    warm_start_a: bool = True
    reset: str = choice("batch", RESETS)  # #1855's | per document
    warmup_steps: int = 2
    warmup_seed: int = 0


class SlotAdamW:
    """AdamW over batched adapters whose leading dimension is the document slot; `step(slots)`
    updates only those slots, each with its own step count."""

    def __init__(self, params: list[torch.Tensor], n_slots: int, lr: float, betas, eps: float, wd: float) -> None:
        self.params, self.lr, self.betas, self.eps, self.wd = params, lr, tuple(betas), eps, wd
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = torch.zeros(len(params), n_slots, dtype=torch.float64)  # steps per parameter and slot

    def reset(self, slots: torch.Tensor, which: list[int] | None = None) -> None:
        """Forget the state of `slots` (of the parameters at indices `which`, default all)."""
        for i in which if which is not None else range(len(self.params)):
            self.m[i][slots.to(self.m[i].device)] = 0
            self.v[i][slots.to(self.v[i].device)] = 0
            self.t[i, slots] = 0

    @torch.no_grad()
    def step(self, slots: torch.Tensor, rows: list[torch.Tensor]) -> None:
        """`rows[i]`: parameter i's rows of `slots` as the forward used them, with their gradients
        (only the active documents' rows are ever materialised, never a full-size gradient)."""
        b1, b2 = self.betas
        for i, (p, m, v, r) in enumerate(zip(self.params, self.m, self.v, rows)):
            if r.grad is None:
                continue
            self.t[i, slots] += 1
            t = self.t[i, slots]
            c1 = (1 - b1 ** t).to(p.device, p.dtype)
            c2 = (1 - b2 ** t).to(p.device, p.dtype)
            slots_here = slots.to(p.device)
            g = r.grad
            shape = (-1,) + (1,) * (p.dim() - 1)
            mi = m[slots_here].mul_(b1).add_(g, alpha=1 - b1)
            vi = v[slots_here].mul_(b2).addcmul_(g, g, value=1 - b2)
            m[slots_here], v[slots_here] = mi, vi
            update = (mi / c1.view(shape)) / ((vi / c2.view(shape)).sqrt() + self.eps)
            p[slots_here] = r.detach() * (1 - self.lr * self.wd) - self.lr * update



class LockstepAdamW:
    """#1855's batch optimizer — one AdamW step per chunk over every slot of a batch, one shared step
    count — taken slot by slot. In the record's lockstep a document at its chunk c has had c updates
    from its own gradients, and a slot whose document is done sees zero gradients, so (β1 = 0) only
    its weight decay, until the batch's last step. Here a slot's update is paid when its next chunk
    comes (`owe`, then `pay`), and the decay-only steps a slot is owed when the batch ends
    (`finish`): the same arithmetic, and no slot's state depends on when another document's windows
    are scored (a mixer's chunks can split a batch)."""

    def __init__(self, opt: SlotAdamW) -> None:
        self.opt = opt
        n = opt.t.size(1)
        self.grads = [torch.zeros_like(p) for p in opt.params]
        self.own = torch.zeros(n, dtype=torch.int64)  # updates each slot took this batch
        self.pending = torch.zeros(n, dtype=torch.bool)
        self.steps = 0

    def start(self) -> None:
        """A new batch: every moment and step count to zero (the adapters' values are the caller's)."""
        everyone = torch.arange(self.own.numel())
        self.opt.reset(everyone)
        for g in self.grads:
            g.zero_()
        self.own.zero_()
        self.pending.zero_()

    def owe(self, slots: torch.Tensor, grads: list[torch.Tensor | None]) -> None:
        """Gradients of `slots`' chunk (grads[i]: their rows of parameter i), paid before their next."""
        index = slots.to(self.grads[0].device)
        for g, r in zip(self.grads, grads):
            if r is not None:
                g.index_add_(0, index, r)
        self.pending[slots] = True

    def pay(self, slots: torch.Tensor) -> None:
        """The owed updates of those of `slots` that owe one."""
        slots = slots[self.pending[slots]]
        if slots.numel() == 0:
            return
        index = slots.to(self.grads[0].device)
        rows = []
        for p, g in zip(self.opt.params, self.grads):
            r = p[index].detach().requires_grad_()
            r.grad = g[index].clone()
            g[index] = 0
            rows.append(r)
        self.opt.step(slots, rows)
        self.pending[slots] = False
        self.own[slots] += 1
        self.steps += 1

    def finish(self) -> None:
        """The batch is done: what is owed, then each slot's steps with zero gradient up to the
        batch's last step (with β1 = 0 only the decay, compounded)."""
        self.pay(torch.nonzero(self.pending).squeeze(1))  # a last chunk never trains: nothing, normally
        owed = (self.own.max() - self.own).tolist()
        decay = 1 - self.opt.lr * self.opt.wd
        with torch.no_grad():
            for slot, k in enumerate(owed):
                if k <= 0:
                    continue
                if self.opt.betas[0] == 0:
                    for p in self.opt.params:
                        p[slot] *= decay ** k
                    continue
                for _ in range(k):  # momentum keeps moving the slot: the record's steps one by one
                    self.pending[slot] = True
                    self.pay(torch.tensor([slot]))
                    self.steps -= 1  # counted as the batch's steps already


def _modules(model) -> dict[str, list[tuple[str, torch.nn.Module]]]:
    """(name, module) of every adapted module per target kind."""
    out: dict[str, list] = {k: [] for k in TARGETS if k != "head"}
    for i, block in enumerate(model.blocks):
        out["q"].append((f"blocks.{i}.attn.c_q", block.attn.c_q))
        out["k"].append((f"blocks.{i}.attn.c_k", block.attn.c_k))
        out["v"].append((f"blocks.{i}.attn.c_v", block.attn.c_v))
        out["o"].append((f"blocks.{i}.attn", block.attn))
        out["mlp"].append((f"blocks.{i}.mlp", block.mlp))
    return out


def _hook(name: str):
    """Adds the active method's adapter output to the module's output (no-op when none is active)."""

    def hook(module, args, output):
        owner = getattr(hook.model, ACTIVE, None)
        if owner is None:
            return None
        return owner.adapt_output(name, args[0], output)

    return hook


@register
class LoraTTT(EvalMethod):
    name = "lora-ttt"
    role = "fit"
    section = "lora_ttt"
    Options = LoraTTTOptions

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        if not self.cfg.targets:
            raise ConfigError(f"evaluation.lora_ttt.targets: choose one or more of {', '.join(TARGETS)}")
        if self.cfg.rank < 1:
            raise ConfigError(f"evaluation.lora_ttt.rank must be >= 1, got {self.cfg.rank}")
        self.steps = 0
        self._live: dict = {}  # this batch's rows of every adapter, as leaves of the step's graph
        self._adapters: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] | None = None

    # setup -----------------------------------------------------------------------------------
    def _check_windows(self) -> None:
        win = self.ctx.windows_method
        if win is None or not getattr(win, "grouped", False):
            raise ConfigError("lora-ttt adapts per document: use it with the doc-sliding windows "
                              "(e.g. methods doc-sliding,lora-ttt)")

    def _install(self, model) -> None:
        """Hooks on the adapted modules (once per model) and the number of calls each gets per forward."""
        base = getattr(model, "_orig_mod", model)
        if not getattr(base, "_pgolf_lora_hooks", False):
            for kind, mods in _modules(base).items():
                for name, module in mods:
                    h = _hook(name)
                    h.model = base
                    module.register_forward_hook(h)
            base._pgolf_lora_hooks = True
        self._calls: dict[str, int] = {}
        self._counting = True
        setattr(base, ACTIVE, self)
        try:
            with torch.no_grad():
                base.hidden(torch.zeros(1, 2, dtype=torch.long, device=self.ctx.runtime.device))
        finally:
            setattr(base, ACTIVE, None)
            self._counting = False
        self._uses = dict(self._calls)

    def _build(self, model) -> None:
        """Fresh adapters and optimizer state for every slot."""
        base = getattr(model, "_orig_mod", model)
        self._check_windows()
        if getattr(self, "_uses", None) is None:
            self._install(model)
        self.n_slots = self.ctx.windows_method.cfg.batch_docs
        self.doc_starts = self.ctx.windows_method.document_starts(self.ctx.tokens.size)
        r, dev = self.cfg.rank, self.ctx.runtime.device
        gen = torch.Generator(device="cpu").manual_seed(1234)
        self._adapters, self._shapes = {}, {}
        chosen = set(self.cfg.targets)
        for kind, mods in _modules(base).items():
            if kind not in chosen:
                continue
            for name, module in mods:
                d_in, d_out = self._dims(kind, module, base)
                for call in range(self._uses.get(name, 0)):
                    self._adapters[(name, call)] = self._pair(d_in, d_out, r, gen, dev)
        if "head" in chosen:
            self._adapters[("head", 0)] = self._pair(base.cfg.model_dim, base.cfg.vocab_size, r, gen, dev)
        self._params = [t for pair in self._adapters.values() for t in pair]
        self._a_index = list(range(0, len(self._params), 2))
        self._b_index = list(range(1, len(self._params), 2))
        self._opt = SlotAdamW(self._params, self.n_slots, self.cfg.lr, self.cfg.betas, self.cfg.eps,
                              self.cfg.weight_decay)
        self.scale = self.cfg.alpha / r
        self.n_docs = self.doc_starts.size
        self._inits = 0
        self._batch = -1  # "batch" reset: the batch under way
        self._lockstep = LockstepAdamW(self._opt) if self.cfg.reset == "batch" else None
        self._initial_a = [self._params[i].detach().clone() for i in self._a_index]
        self._held = None  # the chain's A while a short batch runs

    @staticmethod
    def _dims(kind: str, module, base) -> tuple[int, int]:
        d = base.cfg.model_dim
        if kind in ("q", "k", "v"):
            return module.in_features, module.out_features
        return d, d

    def _pair(self, d_in: int, d_out: int, r: int, gen, dev):
        bound = 1 / math.sqrt(d_in)  # kaiming-uniform(a=√5), LoRA's usual A init
        a = (torch.rand(self.n_slots, r, d_in, generator=gen) * 2 - 1) * bound
        b = torch.zeros(self.n_slots, d_out, r)
        return a.to(dev), b.to(dev)

    def _restart_slots(self, slots: torch.Tensor, keep_a: bool) -> None:
        """B and its optimizer state back to zero for `slots`; A too (fresh init) unless `keep_a`."""
        with torch.no_grad():
            for i in self._b_index:
                self._params[i][slots.to(self._params[i].device)] = 0
        self._opt.reset(slots, self._b_index if keep_a else None)
        if not keep_a:
            self._init_a(slots)

    def _init_a(self, slots: torch.Tensor) -> None:
        # seeded by how many re-initialisations this build has made (never by the step count, which a
        # warm-up on random tokens moves)
        self._inits += 1
        gen = torch.Generator(device="cpu").manual_seed(1234 + self._inits)
        with torch.no_grad():
            for i in self._a_index:
                a = self._params[i]
                bound = 1 / math.sqrt(a.size(-1))
                fresh = (torch.rand((slots.numel(),) + tuple(a.shape[1:]), generator=gen) * 2 - 1) * bound
                a[slots.to(a.device)] = fresh.to(a.device, a.dtype)

    # the forward --------------------------------------------------------------------------------
    def adapt_output(self, name: str, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor | None:
        call = self._calls.get(name, 0)
        self._calls[name] = call + 1
        if self._counting:
            return None
        pair = self._live.get((name, call))
        if pair is None:
            return None
        return output + self._delta(pair, x).to(output.dtype)

    def _delta(self, pair, x: torch.Tensor) -> torch.Tensor:
        a, b = pair  # this batch's documents' adapters: (n, r, in), (n, out, r)
        return torch.bmm(torch.bmm(x.float(), a.transpose(1, 2)), b.transpose(1, 2)) * self.scale

    def warmup(self, model) -> None:
        """Score-and-step rounds on random tokens, then everything is discarded."""
        self._build(model)
        if self.cfg.warmup_steps <= 0:
            return
        gen = torch.Generator(device="cpu").manual_seed(self.cfg.warmup_seed)
        seq = self.ctx.seq_len
        vocab = self.ctx.preset.model.vocab_size
        n = min(self.n_slots, 8)
        for _ in range(self.cfg.warmup_steps):
            ids = torch.randint(0, vocab, (n, seq + 1), generator=gen).to(self.ctx.runtime.device)
            x, y = ids[:, :-1], ids[:, 1:]
            flat = torch.arange(n * seq, device=x.device)
            self._score_and_step(model, x, y, flat, torch.arange(n), np.repeat(np.arange(n), seq))
        self._build(model)

    def logits(self, model, x, y, flat, group) -> torch.Tensor:
        if self._adapters is None:
            self._build(model)
        slots = torch.as_tensor([w.slot for w in group])
        if self.cfg.reset == "batch":
            self._begin_group(group)
            trains = np.array([w.start + w.length < self._doc_end(w.doc) for w in group])
        else:
            starting = [i for i, w in enumerate(group) if w.start + w.score_from == self.doc_starts[w.doc]]
            if starting:  # a document's first chunk: its slot starts fresh (A kept when warm-starting)
                self._restart_slots(slots[starting], keep_a=self.cfg.warm_start_a)
            trains = None  # every window trains
        rows = np.concatenate([np.full(w.length - w.score_from, i) for i, w in enumerate(group)])
        logits = self._score_and_step(model, x, y, flat, slots, rows, trains, defer=self.cfg.reset == "batch")
        for i, (w, s) in enumerate(zip(group, slots.tolist())):
            if trains is None or trains[i]:
                lo, hi = w.start + w.score_from, w.start + w.length
                self.ctx.notify("on_update", method=self.name, state=f"adapters of slot {s}", spans=[(lo, hi)],
                                used_from=hi)
        return logits

    def _doc_end(self, doc: int) -> int:
        """The first target position after document `doc`."""
        return int(self.doc_starts[doc + 1]) if doc + 1 < self.n_docs else self.ctx.tokens.size - 1

    # "batch" reset (LockstepAdamW) ---------------------------------------------------------------
    def _short_batch(self, batch: int) -> bool:
        """A batch the layout makes smaller than batch_docs: the record gives it a LoRA of its own."""
        sizes = getattr(self.ctx.layout, "batch_sizes", None)
        return sizes is not None and batch < len(sizes) and int(sizes[batch]) < self.n_slots

    def _begin_group(self, group) -> None:
        """Before a group is scored: a new batch starts its slots over; owed updates are paid. A short
        batch of the layout (the queue's longest documents) starts from the build's own A and hands
        nothing on: the next batch finds the A the batch before it left."""
        batch = group[0].batch
        if batch != self._batch:
            if self._batch >= 0:
                self._lockstep.finish()
                lo, hi = self._batch_span
                self.ctx.notify("on_update", method=self.name, state="adapters (decay to the batch's end)",
                                spans=[(lo, hi)], used_from=group[0].start + group[0].score_from)
                if self._held is not None:  # after a short batch: the A the chain left before it
                    with torch.no_grad():
                        for i, a in zip(self._a_index, self._held):
                            self._params[i].copy_(a)
                    self._held = None
            if self._short_batch(batch):
                self._held = [self._params[i].detach().clone() for i in self._a_index]
                with torch.no_grad():
                    for i, a in zip(self._a_index, self._initial_a):
                        self._params[i].copy_(a)
            self._batch = batch
            with torch.no_grad():
                for i in self._b_index:
                    self._params[i].zero_()
            self._lockstep.start()
            if not self.cfg.warm_start_a:
                self._init_a(torch.arange(self.n_slots))
            self._batch_span = [group[0].start + group[0].score_from, 0]
        self._lockstep.pay(torch.as_tensor(sorted({w.slot for w in group})))
        self._batch_span[1] = max(self._batch_span[1], max(w.start + w.length for w in group))

    def _score_and_step(self, model, x, y, flat, slots: torch.Tensor, rows: np.ndarray,
                        trains: np.ndarray | None = None, defer: bool = False) -> torch.Tensor:
        """Logits with each window's adapters (returned as scored), then one step on each window's
        mean loss over its scored positions (windows with `trains` False add nothing; `defer` keeps
        the gradients for the batch's step instead). `rows`: the window of each scored position."""
        base = getattr(model, "_orig_mod", model)
        frozen = [p.requires_grad for p in base.parameters()]
        for p in base.parameters():
            p.requires_grad_(False)
        index = slots.to(x.device)
        self._live = {key: (a[index].requires_grad_(), b[index].requires_grad_())
                      for key, (a, b) in self._adapters.items()}
        self._calls = {}
        setattr(base, ACTIVE, self)
        try:
            with torch.enable_grad(), autocast_context(self.ctx.runtime):
                h = base.hidden(x)
                head = self._live.get(("head", 0))
                delta = self._delta(head, h) if head is not None else None
                logits = base.logits_from_hidden(h, delta)
                scored = logits.reshape(-1, logits.size(-1)).index_select(0, flat).float()
                nll = F.cross_entropy(scored, y.reshape(-1).index_select(0, flat), reduction="none")
                which = torch.as_tensor(rows, device=nll.device)
                per_window = torch.zeros(len(slots), device=nll.device).index_add_(0, which, nll)
                counts = torch.bincount(which, minlength=len(slots)).clamp_min(1)
                mean = per_window / counts
                if trains is not None:
                    mean = mean * torch.as_tensor(trains, dtype=mean.dtype, device=mean.device)
                if trains is None or trains.any():
                    mean.sum().backward()
        finally:
            setattr(base, ACTIVE, None)
            for p, flag in zip(base.parameters(), frozen):
                p.requires_grad_(flag)
        live = [t for pair in self._live.values() for t in pair]
        self._live = {}
        if defer:
            if trains is not None and trains.any():
                keep = torch.as_tensor(trains)
                self._lockstep.owe(slots[keep], [r.grad[keep.to(r.grad.device)] if r.grad is not None else None
                                                 for r in live])
        else:
            self._opt.step(slots, live)
            self.steps += 1
        return logits.detach()

    def on_base_changed(self, model) -> None:
        """The base weights moved (a phased-TTT global step): new adapters and optimizer state."""
        self._build(model)

    def describe(self) -> dict:
        out = super().describe()
        if self._adapters is not None:
            out["adapter_params_per_document"] = sum(t[0].numel() for t in self._params)
            out["steps"] = self.steps
        return out
