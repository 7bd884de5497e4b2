"""pgolf's `record-1855` against the record's own `train_gpt.py`, step for step, at a tiny shape on CPU.

    python benchmarks/vs_record.py --record DIR --data SHARDS [--steps 12] [--ttt-docs 12] [--json]

DIR holds the 1.0611 record's `train_gpt.py` (`--record`, or the environment variable PGOLF_RECORD);
nothing of it is copied into pgolf. SHARDS: the dev corpus built with the contest's SP-1024 tokenizer
(`pgolf data build CORPUS --tokenizer fineweb_1024_bpe.model --val-fraction 0.1 --out SHARDS`).

The record's script is imported as a module under a CPU shim written here: FlashAttention's dense
and varlen calls become per-segment `scaled_dot_product_attention`, Triton is a stub (its fused
cross entropy is switched off through the script's own FUSED_CE_ENABLED=0, its fused MLP through the
MLP's `use_fused` flag), `torch.compile` is the identity, CUDA streams and syncs do nothing, and every
bf16 cast stays fp32. The script's code itself runs unchanged.

1. Training: the record's `train_model()` and pgolf's trainer, from the same initial weights (pgolf's,
   mapped into the record's banks), on the same packed rows (8 micro-batches of one row, documents
   cut every TRAIN_SEQ_LEN tokens from their BOS), `--steps` steps with the loop switching on at 35 %
   and the warmdown over 85 % of the run: both columns of train losses and the largest difference.
2. Phased TTT: pgolf's trained weights loaded into both, the same LoRA A (pgolf's, copied into every
   adapter the record builds), on the first `--ttt-docs` validation documents: the record's
   `eval_val_ttt_phased()` and pgolf's `doc-sliding,lora-ttt,phased` — loss, bpb and the difference.
   The record's queue is given pgolf's one deviation (the stream's final, truncated document scored
   last, in a batch of its own; docs/techniques.md), so both score the same batches in the same order.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from harness import TORCHRUN_VARIABLES, single_process, train_losses

RECORD_ENV = "PGOLF_RECORD"
BOS = 1

# The tiny shape, in the record's environment variables and in pgolf's overrides. Layers 1..1 looped
# twice more (6 virtual layers), parallel lanes on the last layer, XSA everywhere, head dim 32 with
# 16 rotary dims (partial RoPE), 8 micro-batches of one 256-token packed row, 128-token segments.
SHAPE = {"VOCAB_SIZE": "1024", "NUM_LAYERS": "4", "MODEL_DIM": "128", "NUM_HEADS": "4", "NUM_KV_HEADS": "2",
         "MLP_MULT": "4", "XSA_LAST_N": "4", "ROPE_DIMS": "16", "LOOP_START": "1", "LOOP_END": "1", "NUM_LOOPS": "2",
         "PARALLEL_START_LAYER": "3", "TRAIN_SEQ_LEN": "128", "EVAL_SEQ_LEN": "128", "TTT_EVAL_SEQ_LEN": "128",
         "TRAIN_BATCH_TOKENS": "2048", "WARMUP_STEPS": "0", "MAX_WALLCLOCK_SECONDS": "0", "VAL_LOSS_EVERY": "0",
         "TRAIN_LOG_EVERY": "1", "FUSED_CE_ENABLED": "0", "VAL_BATCH_TOKENS": "1024",
         # the run's own settings that differ from the script's defaults (its log's 9 overrides and more)
         "WARMDOWN_FRAC": "0.85", "MIN_LR": "0.1", "BETA2": "0.99", "SMEAR_GATE_ENABLED": "1",
         "SPARSE_ATTN_GATE_ENABLED": "1", "SPARSE_ATTN_GATE_SCALE": "0.5", "GATED_ATTN_QUANT_GATE": "1",
         "CASEOPS_ENABLED": "1"}  # its byte sidecar (written here from the piece table): see tiny_data
PGOLF_SHAPE = ["model.vocab_size=1024", "model.num_layers=4", "model.model_dim=128", "model.num_heads=4",
               "model.num_kv_heads=2", "model.addons.depth_recurrence.start=1", "model.addons.depth_recurrence.end=1",
               "model.addons.parallel_lanes.start=3", 'model.addons.doc_isolation.kernel="mask"',
               "model.addons.doc_isolation.max_segment=128", "train.seq_len=128", "train.tokens_per_step=2048",
               "train.grad_accum=8", "train.packed_rows=true", "train.warmup_steps=0", "train.max_wallclock_seconds=0",
               'train.compile="off"', "train.val_every=0", "train.train_log_every=1", "train.val_tokens_limit=0",
               "train.gptq_calibration_sequences=2", "train.gptq_calibration_seq_len=16", "eval.seq_len=128"]
# The TTT at this scale, in both vocabularies: chunks of 16 over a 128-token context, batches of 4
# documents, LoRA rank 4 with α 7.2 (the record's output scale α/r = 144/80 = 1.8) at 3x its lr, two
# phases over the first 6 documents. (At α/r = 36 the tiny model's TTT is chaotic: both codes agree to
# 5e-7 after one step and drift apart by 0.3 nats within ten — a test of stability, not of faithfulness.)
TTT = {"TTT_CHUNK_SIZE": "16", "TTT_BATCH_SIZE": "4", "TTT_LORA_RANK": "4", "TTT_LORA_ALPHA": "7.2", "TTT_LORA_LR": "0.0003",
       "TTT_BETA1": "0", "TTT_BETA2": "0.99", "TTT_WEIGHT_DECAY": "0.5", "PHASED_TTT_PREFIX_DOCS": "6",
       "PHASED_TTT_NUM_PHASES": "2", "GLOBAL_TTT_LR": "0.01", "GLOBAL_TTT_MOMENTUM": "0.9",
       "GLOBAL_TTT_EPOCHS": "1", "GLOBAL_TTT_CHUNK_TOKENS": "512", "GLOBAL_TTT_BATCH_SEQS": "32",
       "GLOBAL_TTT_GRAD_CLIP": "1.0"}
PGOLF_TTT = {"doc_sliding": {"seq_len": 128, "chunk_tokens": 16, "batch_docs": 4},
             "lora_ttt": {"rank": 4, "alpha": 7.2, "lr": 0.0003, "betas": [0.0, 0.99], "weight_decay": 0.5,
                          "warmup_steps": 0},
             "phased": {"phases": 2, "prefix_docs": 6, "lr": 0.01, "momentum": 0.9, "epochs": 1, "chunk_tokens": 512,
                        "batch_seqs": 32, "grad_clip": 1.0}}


# ----------------------------------------------------------------------------- the CPU shim
def _segments(cu: torch.Tensor) -> list[tuple[int, int]]:
    b = cu.tolist()
    return [(lo, hi) for lo, hi in zip(b[:-1], b[1:]) if hi > lo]  # padded boundaries repeat the end


def _attend(q, k, v):
    """(B, T, H, D) causal attention with GQA, through SDPA (fp32 on CPU)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                         enable_gqa=k.size(2) != q.size(2))
    return out.transpose(1, 2)


def flash_attn_func(q, k, v, causal=True, **_):
    assert causal
    return _attend(q, k, v)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal=True, **_):
    """(total, H, D) rows cut at cu_seqlens; causal attention inside each segment."""
    assert causal and torch.equal(cu_seqlens_q, cu_seqlens_k)
    out = torch.empty_like(q)
    for lo, hi in _segments(cu_seqlens_q):
        out[lo:hi] = _attend(q[None, lo:hi], k[None, lo:hi], v[None, lo:hi])[0]
    return out


class _Anything(types.ModuleType):
    """A stub module: every attribute is a do-nothing callable / decorator."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def anything(*args, **kwargs):
            return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else anything

        return anything


@contextlib.contextmanager
def cpu_shim():
    """What the record's script needs to import and run on a CPU, fp32 throughout."""
    fa = types.ModuleType("flash_attn_interface")
    fa.flash_attn_func, fa.flash_attn_varlen_func = flash_attn_func, flash_attn_varlen_func
    triton, language, tools, descriptor = (_Anything(n) for n in ("triton", "triton.language", "triton.tools",
                                                                    "triton.tools.tensor_descriptor"))
    triton.language, triton.tools, tools.tensor_descriptor = language, tools, descriptor
    stubs = {"flash_attn_interface": fa, "triton": triton, "triton.language": language, "triton.tools": tools,
             "triton.tools.tensor_descriptor": descriptor}
    saved_modules = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    nothing = contextlib.nullcontext
    stream = types.SimpleNamespace(wait_stream=lambda s: None)  # one CPU "stream": everything in order
    patches = [
        (torch, "compile", lambda fn=None, **kw: fn if fn is not None else (lambda f: f)),
        (torch.cuda, "Stream", lambda *a, **k: stream), (torch.cuda, "stream", lambda *a, **k: nothing()),
        (torch.cuda, "current_stream", lambda *a, **k: stream),
        (torch.cuda, "synchronize", lambda *a, **k: None), (torch.cuda, "empty_cache", lambda *a, **k: None),
        (torch.cuda, "max_memory_allocated", lambda *a, **k: 0), (torch.cuda, "max_memory_reserved", lambda *a, **k: 0),
        (torch.cuda, "manual_seed_all", lambda *a, **k: None),
        (torch.Tensor, "pin_memory", lambda self, *a, **k: self),
        (torch.nn.Module, "bfloat16", lambda self: self), (torch.Tensor, "bfloat16", lambda self: self.float()),
        (torch, "autocast", lambda device_type=None, **k: nothing()),
    ]
    empty = torch.empty
    patches.append((torch, "empty", lambda *a, pin_memory=False, **k: empty(*a, **k)))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, new in patches:
        setattr(obj, name, new)
    try:
        yield
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)
        for k, m in saved_modules.items():
            if m is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = m


def import_record(script: Path, env: dict[str, str]):
    """The record's script as a module, its Hyperparameters read from `env` (at import, as it does)."""
    old = {k: os.environ.get(k) for k in list(env) + list(TORCHRUN_VARIABLES)}
    os.environ.update(env)
    for name in set(os.environ) - set(single_process(dict(os.environ))):
        os.environ.pop(name)
    try:
        spec = importlib.util.spec_from_file_location("record_train_gpt", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return module


# ----------------------------------------------------------------------------- weights
def to_record_state(pgolf_state: dict[str, torch.Tensor], record_model) -> dict[str, torch.Tensor]:
    """pgolf's parameters in the record's layout: block matrices into its banks, add-on tensors under
    the record's names (each shape checked against the record's model)."""
    n = record_model.num_layers
    out = {k: v.clone() for k, v in record_model.state_dict().items()}

    def put(name, value):
        assert out[name].shape == value.shape, (name, out[name].shape, value.shape)
        out[name] = value.clone()

    banks = {"attn.c_q": ("qo_bank", 0), "attn.proj": ("qo_bank", n), "attn.c_k": ("kv_bank", 0),
             "attn.c_v": ("kv_bank", n), "mlp.fc": ("mlp_up_bank", 0), "mlp.proj": ("mlp_down_bank", 0)}
    for i in range(n):
        for ours, (bank, offset) in banks.items():
            out[bank][offset + i] = pgolf_state[f"blocks.{i}.{ours}.weight"]
        for ours in ("attn_scale", "mlp_scale", "resid_mix", "attn.q_gain"):
            put(f"blocks.{i}.{ours}", pgolf_state[f"blocks.{i}.{ours}"])
        put(f"blocks.{i}.attn.attn_gate_w", pgolf_state["addons.sparse_attn_gate.weight"][i])
    put("tok_emb.weight", pgolf_state["tok_emb.weight"])
    put("skip_weights", pgolf_state["addons.unet_skips.skip_weights"])
    put("skip_gates", pgolf_state["addons.unet_skips.skip_gates"])
    put("parallel_post_lambdas", pgolf_state["addons.parallel_lanes.post"])
    put("parallel_resid_lambdas", pgolf_state["addons.parallel_lanes.resid"])
    put("smear_gate.weight", pgolf_state["addons.smear_gate_v3.gate"][None])
    put("smear_lambda", pgolf_state["addons.smear_gate_v3.strength"])
    return out


@contextlib.contextmanager
def record_starts_from(rec, state_of):
    """Every GPT the record builds starts from `state_of(model)` (pgolf's weights, mapped), with its
    Triton MLP off (the eager branch computes the same)."""
    original = rec.GPT._init_weights

    def init(self):
        original(self)
        self.load_state_dict(to_record_state(state_of(), self))
        for block in self.blocks:
            block.mlp.use_fused = False

    rec.GPT._init_weights = init
    try:
        yield
    finally:
        rec.GPT._init_weights = original


# ----------------------------------------------------------------------------- data
def tiny_data(shards: Path, work: Path, docs: int, seq_len: int) -> Path:
    """The training shards as they are, and a validation shard of the first `docs` documents cut so
    that (tokens − 1) is a multiple of seq_len (what the record's loader keeps), the tokenizer beside."""
    from pgolf.data.shards import list_shards, read_shard, write_shard

    out = work / "data"
    out.mkdir(parents=True, exist_ok=True)
    for p in list_shards(shards, "train"):
        (out / p.name).symlink_to(p.resolve())
    (out / "tokenizer.model").symlink_to((shards / "tokenizer.model").resolve())
    val = np.concatenate([np.asarray(read_shard(p)) for p in list_shards(shards, "val")])
    bos = np.flatnonzero(val == BOS)
    end = int(bos[docs]) if docs < bos.size else val.size
    usable = (end - 1) // seq_len * seq_len + 1
    if usable - int(bos[docs - 1]) < 2:
        sys.exit(f"vs_record: cutting the validation split to a multiple of {seq_len} leaves its last document empty")
    val = val[:usable]
    write_shard(out / "fineweb_val_000000.bin", val)
    # The record's eval_val always reads a byte sidecar (CASEOPS_ENABLED=1): give it the piece table's
    # counts, which pgolf charges on data built without a transform, so both count the same bytes.
    from pgolf.data.tokenizer import build_byte_tables, load_tokenizer

    t = build_byte_tables(load_tokenizer(out / "tokenizer.model"), 1024)
    counts = np.zeros(val.size, dtype=np.int64)
    counts[1:] = t.base_bytes[val[1:]] + (t.leading_space[val[1:]] & ~t.boundary[val[:-1]])
    write_shard(out / "fineweb_val_bytes_000000.bin", counts.astype(np.uint16))
    return out


# ----------------------------------------------------------------------------- the runs
def pgolf_preset(steps: int):
    from pgolf.job.preset import load_preset

    return load_preset("record-1855", PGOLF_SHAPE + [f"train.iterations={steps}"])


def run_pgolf_training(data: Path, work: Path, steps: int) -> tuple[list[float], dict, dict]:
    """(train losses, initial weights, final weights) of pgolf's trainer."""
    from pgolf.runtime import Runtime
    from pgolf.train import loop
    from pgolf.train.checkpoint import load_checkpoint

    preset = pgolf_preset(steps)
    captured = {}
    build = loop.build_trainer

    def keep_initial(*a, **k):
        t = build(*a, **k)
        captured["initial"] = {n: v.detach().clone() for n, v in t.model.state_dict().items()}
        return t

    loop.build_trainer = keep_initial
    try:
        with torch.random.fork_rng():
            loop.train(preset, data, work / "pgolf", Runtime(), progress=False)
    finally:
        loop.build_trainer = build
    final, _ = load_checkpoint(work / "pgolf")
    return train_losses(work / "pgolf"), captured["initial"], final


def run_record_training(rec, data: Path, work: Path, initial: dict) -> list[float]:
    """Train losses of the record's `train_model()` from pgolf's initial weights (each step's mean over
    its micro-batches, summed in fp32 as its step function does)."""
    h = rec.Hyperparameters()
    h.datasets_dir = str(data)
    h.train_files, h.val_files = str(data / "fineweb_train_*.bin"), str(data / "fineweb_val_*.bin")
    h.tokenizer_path, h.logfile = str(data / "tokenizer.model"), str(work / "record.log")
    h.val_bytes_files = str(data / "fineweb_val_bytes_*.bin")
    rec.set_logging_hparams(h)
    losses: list[torch.Tensor] = []
    forward = rec.GPT.forward

    def watched(self, *a, **k):
        loss = forward(self, *a, **k)
        if self.training and torch.is_grad_enabled():
            losses.append(loss.detach())
        return loss

    rec.GPT.forward = watched
    try:
        with record_starts_from(rec, lambda: initial), contextlib.redirect_stdout(sys.stderr):
            rec.train_model(h, torch.device("cpu"), rec.ValidationData(h, torch.device("cpu")))
    finally:
        rec.GPT.forward = forward
    per = h.grad_accum_steps
    out = []
    for s in range(len(losses) // per):
        total = torch.zeros(())
        for loss in losses[s * per : (s + 1) * per]:
            total += loss
        out.append(float(total / per))
    return out


def run_pgolf_ttt(data: Path, weights: dict, steps: int) -> tuple[dict, dict]:
    """pgolf's phased TTT on the validation documents with `weights`; also the LoRA A it starts from."""
    from pgolf.data.validation import load_eval_inputs
    from pgolf.evaluate.methods import lora_ttt
    from pgolf.evaluate.pipeline import run_pipeline
    from pgolf.model.gpt import GPT
    from pgolf.runtime import Runtime

    preset = pgolf_preset(steps)
    model = GPT(preset.model)
    model.load_state_dict(weights)
    model.set_train_progress(1.0)  # trained: the loop is on
    val, tables, _ = load_eval_inputs(data, None, 1024, torch.device("cpu"))
    adapters = {}
    build = lora_ttt.LoraTTT._build

    def keep_adapters(self, m):
        build(self, m)
        adapters.setdefault("a", {k: a.clone() for k, (a, _) in self._adapters.items()})

    lora_ttt.LoraTTT._build = keep_adapters
    try:
        r = run_pipeline(model, val, tables, preset, Runtime(), ["doc-sliding", "lora-ttt", "phased"],
                         overrides=PGOLF_TTT, keep_scores=True)
    finally:
        lora_ttt.LoraTTT._build = build
    starts = np.flatnonzero(val[:-1] == BOS).tolist() + [val.size - 1]
    per_doc = {a: float(r.scores[a:b].mean()) for a, b in zip(starts[:-1], starts[1:])}
    phased = next(m for m in r.methods if m["method"] == "phased")
    return {"val_loss": r.totals.loss, "val_bpb": r.totals.bpb, "tokens": r.totals.tokens, "documents": per_doc,
            "phases": phased.get("trained", []), "order": model.layer_order()}, adapters["a"]


def run_record_ttt(rec, data: Path, work: Path, weights: dict, adapters: dict, order: list[int]) -> dict:
    """The record's `eval_val_ttt_phased()` with `weights`, every LoRA it builds starting from pgolf's
    A, and its queue given pgolf's placement of the stream's final document (last)."""
    h = rec.Hyperparameters()
    h.datasets_dir = str(data)
    h.train_files, h.val_files = str(data / "fineweb_train_*.bin"), str(data / "fineweb_val_*.bin")
    h.tokenizer_path, h.logfile, h.run_id = str(data / "tokenizer.model"), str(work / "record-ttt.log"), "vs_record"
    h.val_bytes_files = str(data / "fineweb_val_bytes_*.bin")
    rec.set_logging_hparams(h)
    cpu = torch.device("cpu")
    val_data = rec.ValidationData(h, cpu)
    with record_starts_from(rec, lambda: weights):
        model = rec.GPT(h)
    model.looping_active = True
    for p in model.parameters():
        p.requires_grad_(False)
    calls = {}
    for v, i in enumerate(order):  # record slot v <- pgolf's (module, call) adapter
        calls[v] = (i, order[:v].count(i))

    lora_init = rec.BatchedTTTLoRA.__init__

    def pgolf_a(self, bsz, model, rank, **k):
        lora_init(self, bsz, model, rank, **k)
        with torch.no_grad():
            self.lm_head_lora.A.copy_(adapters[("head", 0)][:bsz])
            for v, (i, c) in calls.items():
                for mine, ours in (("q_loras", "attn.c_q"), ("k_loras", "attn.c_k"), ("v_loras", "attn.c_v"),
                                   ("o_loras", "attn"), ("mlp_loras", "mlp")):
                    getattr(self, mine)[v].A.copy_(adapters[(f"blocks.{i}.{ours}", c)][:bsz])

    batches = rec._build_ttt_global_batches

    def final_document_last(doc_entries, hp, ascending=False):
        *rest, final = doc_entries
        return batches(rest, hp, ascending) + [(len(rest), [final])]  # a batch of its own, scored last

    sums: dict[int, list[float]] = {}
    accumulate = rec._accumulate_bpb

    def per_document(ptl, x, y, chunk_offsets, chunk_lens, *rest, **kw):
        """Each document's scored nats as well (read from the caller's `batch`: (start, length) pairs)."""
        batch = sys._getframe(1).f_locals["batch"]
        for b, (start, _) in enumerate(batch):
            lo, n = int(chunk_offsets[b]), int(chunk_lens[b])
            if n > 0:
                acc = sums.setdefault(int(start), [0.0, 0])
                acc[0] += float(ptl[b, lo : lo + n].double().sum())
                acc[1] += n
        return accumulate(ptl, x, y, chunk_offsets, chunk_lens, *rest, **kw)

    rec.BatchedTTTLoRA.__init__, rec._build_ttt_global_batches = pgolf_a, final_document_last
    rec._accumulate_bpb = per_document
    try:
        for block in model.blocks:
            block.attn.rotary._cos_cached = None
            block.attn.rotary(h.ttt_eval_seq_len, cpu, torch.float32)
        with contextlib.redirect_stdout(sys.stderr):
            loss, bpb = rec.eval_val_ttt_phased(h, model, cpu, val_data,
                                                forward_ttt_train=lambda x, y, lora: model.forward_ttt(x, y, lora=lora))
    finally:
        rec.BatchedTTTLoRA.__init__, rec._build_ttt_global_batches = lora_init, batches
        rec._accumulate_bpb = accumulate
    phases = [line for line in Path(h.logfile).read_text().splitlines() if line.startswith("ttpp:")]
    return {"val_loss": loss, "val_bpb": bpb, "documents": {a: t / n for a, (t, n) in sums.items()}, "phases": phases}


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", type=Path, default=os.environ.get(RECORD_ENV),
                    help=f"folder with the record's train_gpt.py (default ${RECORD_ENV})")
    ap.add_argument("--data", type=Path, required=True, help="SP-1024 shards of the dev corpus")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--ttt-docs", type=int, default=12, help="validation documents the TTT scores (a multiple of 4)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    script = Path(args.record or "") / "train_gpt.py"
    if not script.is_file():
        sys.exit(f"vs_record: pass --record DIR (or set {RECORD_ENV}) holding the record's train_gpt.py")
    torch.set_num_threads(1)  # one thread each: reductions in a fixed order
    with tempfile.TemporaryDirectory(prefix="pgolf-vs-record-") as tmp:
        work = Path(tmp)
        data = tiny_data(args.data, work, args.ttt_docs, 128)
        with cpu_shim():  # only while the record's code imports and runs; pgolf runs without it
            rec = import_record(script, {**SHAPE, **TTT, "ITERATIONS": str(args.steps), "SEED": "1337"})
        ours, initial, final = run_pgolf_training(data, work, args.steps)
        with cpu_shim():
            theirs = run_record_training(rec, data, work, initial)
        ttt_ours, adapters = run_pgolf_ttt(data, final, args.steps)
        with cpu_shim():
            ttt_theirs = run_record_ttt(rec, data, work, final, adapters, ttt_ours.pop("order"))
    diff = [abs(a - b) for a, b in zip(ours, theirs)]
    docs = sorted(ttt_ours["documents"])
    doc_diff = [abs(ttt_ours["documents"][d] - ttt_theirs["documents"][d]) for d in docs]
    out = {"steps": args.steps, "train": {"pgolf": ours, "record": theirs, "max_abs_diff": max(diff),
                                          "max_rel_diff": max(d / abs(b) for d, b in zip(diff, theirs))},
           "ttt": {"documents": args.ttt_docs, "pgolf": ttt_ours, "record": ttt_theirs,
                   "loss_diff": abs(ttt_ours["val_loss"] - ttt_theirs["val_loss"]),
                   "bpb_diff": abs(ttt_ours["val_bpb"] - ttt_theirs["val_bpb"]),
                   "max_document_diff": max(doc_diff)}}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{'step':>4}  {'record train_model()':>22}  {'pgolf':>22}  {'|diff|':>9}  {'ulps':>5}")
    for s, (a, b) in enumerate(zip(theirs, ours), 1):
        ulp = abs(np.float32(a) - np.float32(b)) / np.spacing(np.float32(a))
        print(f"{s:>4}  {a:>22.9f}  {b:>22.9f}  {abs(a - b):>9.2e}  {ulp:>5.0f}")
    t = out["train"]
    print(f"largest difference {t['max_abs_diff']:.3e} ({t['max_rel_diff']:.2e} relative) over {len(diff)} steps\n")
    r = out["ttt"]
    print(f"phased TTT on {args.ttt_docs} documents ({r['pgolf']['tokens']:,} targets), pgolf's trained weights in both")
    print("  record's phases: " + "; ".join(r["record"]["phases"]))
    print("  pgolf's phases:  " + "; ".join(f"{p['documents']} documents, {p['tokens']:,} tokens" for p in r["pgolf"]["phases"]))
    print(f"{'document at':>13}  {'record (nats/token)':>20}  {'pgolf':>20}  {'|diff|':>9}")
    for d, dd in zip(docs, doc_diff):
        print(f"{d:>13,}  {ttt_theirs['documents'][d]:>20.9f}  {ttt_ours['documents'][d]:>20.9f}  {dd:>9.2e}")
    print(f"  {'total':>11}  val_loss {r['record']['val_loss']:.9f} / {r['pgolf']['val_loss']:.9f}   "
          f"val_bpb {r['record']['val_bpb']:.9f} / {r['pgolf']['val_bpb']:.9f}")
    print(f"largest difference: a document {r['max_document_diff']:.2e}; the total loss {r['loss_diff']:.2e}, "
          f"bpb {r['bpb_diff']:.2e}")


if __name__ == "__main__":
    main()
