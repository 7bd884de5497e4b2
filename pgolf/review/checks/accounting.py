"""Byte accounting: the validation bytes recomputed independently, the script's own byte table
against the canonical one, and whether the whole split was scored.

- Every reported score is a (val_loss, val_bpb) pair; bpb·ln 2 / loss is the tokens-per-byte
  ratio it was computed with. With `--data`, that ratio and every reported byte total are compared
  with the canonical count of the same scored tokens (piece tables from the tokenizer, or the
  byte sidecar of transformed data); without it, with the contest split's known ratio when the
  logs name a contest tokenizer (#2138 divided by the wrong bytes).
- The script's byte-table builder runs in a subprocess on only its own definitions
  (pgolf.review.table_probe); every token id where it differs from the canonical table is listed
  (Issues #1687/#1705 shipped such tables).
- The scored tokens against the whole split: missing more than one evaluation sequence (the
  contest's own truncation to whole sequences, which the reviewers accepted) is a subset (#1854,
  #1858), as are settings that score a fraction (`val_doc_fraction` < 1, `ttt_eval_batches`).
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pgolf.review.contest import KNOWN_TOKENS_PER_BYTE, KNOWN_VAL_TOKENS
from pgolf.review.evidence import Evidence, contest_family
from pgolf.review.result import NA, Result, conclude

NAME = "byte accounting"
RATIO_TOLERANCE_DATA = 2e-6  # relative: 8-digit loss and bpb pin the ratio far tighter
RATIO_TOLERANCE_KNOWN = 5e-5  # relative: the known ratios are themselves derived from rounded logs
PROBE_TIMEOUT_S = 120


def canonical_bytes(data: Path, tokenizer: str | None) -> tuple[np.ndarray, object, Path]:
    """(bytes of each validation target, canonical ByteTables, tokenizer path) of a data directory."""
    from pgolf.data.bpb import target_bytes
    from pgolf.data.build import read_manifest, resolve_tokenizer
    from pgolf.data.shards import load_split
    from pgolf.data.sidecar import load_sidecar
    from pgolf.data.tokenizer import build_byte_tables, load_tokenizer

    tok = resolve_tokenizer(data, tokenizer)
    sp = load_tokenizer(tok)
    val = np.asarray(load_split(data, "val"), dtype=np.int64)
    tables = build_byte_tables(sp, max(sp.vocab_size(), int(val.max()) + 1))
    if (read_manifest(data) or {}).get("transform"):
        per_target = load_sidecar(data, "val", val.size)[1:]
    else:
        per_target = target_bytes(tables, val[:-1], val[1:])
    return per_target, tables, tok


def script_table(script: Path, tokenizer: Path) -> tuple[dict | None, str]:
    """The script's own byte table (None and why, when it could not be built in isolation)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "table.npz"
        try:
            done = subprocess.run([sys.executable, "-m", "pgolf.review.table_probe", str(script), str(tokenizer),
                                   str(out)], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None, f"its table builder did not finish in {PROBE_TIMEOUT_S} s"
        if done.returncode != 0 or not out.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"its table builder could not run in isolation ({last})"
        z = np.load(out)
        return {k: z[k] for k in ("base_bytes", "leading_space", "boundary")} | {"builder": str(z["builder"])}, ""


def table_differences(theirs: dict, canon, vocab: int) -> list[str]:
    diffs = []
    for field, label in (("base_bytes", "bytes"), ("leading_space", "leading space"), ("boundary", "boundary")):
        a = np.asarray(theirs[field])[:vocab].astype(np.int64)
        b = np.asarray(getattr(canon, field))[:vocab].astype(np.int64)
        n = min(a.size, b.size)
        for i in np.flatnonzero(a[:n] != b[:n])[:10]:
            diffs.append(f"token {i}: {label} {a[i]} in the script, {b[i]} canonical")
        if a.size < vocab:
            diffs.append(f"the script's table has {a.size} entries for a {vocab}-piece tokenizer")
    return diffs


def eval_seq_len(log) -> int:
    lens = [int(f.value) for k, f in log.hyperparameters.items()
            if k.split(".")[-1] in ("eval_seq_len", "ttt_eval_seq_len", "seq_len", "train_seq_len")
            and str(f.value).isdigit()]
    return max(lens) if lens else 4096


def check(ev: Evidence, options: dict) -> Result:
    flags, notes = [], []
    data, tokenizer = options.get("data"), options.get("tokenizer")
    family = contest_family(ev)
    per_target = canon = tok_path = None
    if data is not None:
        per_target, canon, tok_path = canonical_bytes(Path(data), tokenizer)
        cum = np.concatenate([[0], np.cumsum(per_target)])
        notes.append(f"recomputed from {data}: {per_target.size:,} validation targets, {int(cum[-1]):,} counted bytes")
    elif tokenizer is not None:
        from pgolf.data.tokenizer import build_byte_tables, load_tokenizer

        tok_path = Path(tokenizer)
        sp = load_tokenizer(tok_path)
        canon = build_byte_tables(sp, sp.vocab_size())
    for log in ev.logs:
        whole = log.first("val_tokens")
        seq = eval_seq_len(log)
        for s in [s for s in log.scores if s.evaluation and not s.name.startswith("diagnostic")]:
            ratio = s.val_bpb * math.log(2) / s.val_loss if s.val_loss > 0 else float("nan")
            scored = s.tokens if s.tokens is not None else (whole.value if whole is not None else None)
            where = f"{log.path.name}:{s.line}"
            if per_target is not None and scored is not None and 0 < scored <= per_target.size:
                expected_bytes = int(cum[scored])
                if s.bytes is not None and s.bytes != expected_bytes:
                    flags.append(f"{where}: {s.bytes:,} bytes for {scored:,} tokens; the canonical count is "
                                 f"{expected_bytes:,} ({s.bytes - expected_bytes:+,})")
                expected = scored / expected_bytes
                if abs(ratio / expected - 1) > RATIO_TOLERANCE_DATA:
                    flags.append(f"{where}: val_bpb/val_loss imply {ratio:.7f} tokens per byte; the {scored:,} "
                                 f"scored tokens have {expected:.7f} (a different bytes denominator)")
            elif family in KNOWN_TOKENS_PER_BYTE and s.bytes is None:
                expected = KNOWN_TOKENS_PER_BYTE[family]
                if abs(ratio / expected - 1) > RATIO_TOLERANCE_KNOWN:
                    flags.append(f"{where}: val_bpb/val_loss imply {ratio:.7f} tokens per byte; the contest's "
                                 f"{family} split has {expected:.7f}")
                else:
                    notes.append(f"{where}: {ratio:.7f} tokens per byte = the contest's {family} split")
            elif s.tokens is not None and s.bytes:
                implied = s.tokens / s.bytes
                if abs(ratio / implied - 1) > RATIO_TOLERANCE_DATA:
                    flags.append(f"{where}: val_bpb is not val_loss / ln 2 × {s.tokens:,} tokens / {s.bytes:,} bytes")
        final = log.final_score
        split = per_target.size if per_target is not None else (
            whole.value if whole is not None and log.dialect == "pgolf" else None)
        if split is None and family in KNOWN_VAL_TOKENS:
            split = max(KNOWN_VAL_TOKENS[family].values())
        if final is not None and split is not None:
            scored = final.tokens if final.tokens is not None else (whole.value if whole is not None else None)
            if scored is not None:
                missing = split - scored
                line = f"{log.path.name}:{final.line}: scored {scored:,} of {split:,} validation targets"
                if missing > seq:  # the root cause when it is there: first
                    flags.insert(0, f"{line} ({100 * scored / split:.1f} %): {missing:,} left out, more than one "
                                 f"{seq}-token sequence")
                else:
                    notes.append(line + (f" (the last {missing:,}: the contest's truncation to whole sequences)"
                                         if missing > 0 else ""))
        for key in ("val_doc_fraction", "eval.val_doc_fraction"):
            f = log.hyperparameters.get(key)
            if f is not None and _float(f.value) < 1.0:
                flags.append(f"{log.path.name}:{f.line}: {key} {f.value}: a fraction of the validation documents")
        f = log.hyperparameters.get("ttt_eval_batches")
        if f is not None and str(f.value).strip() not in ("", "None", "0"):
            flags.append(f"{log.path.name}:{f.line}: ttt_eval_batches {f.value}: TTT scores only those batches")
    if ev.script is not None:
        if family == "sp8192-caseops":
            notes.append("script byte table: n/a (CaseOps scores the byte sidecar, not the piece table)")
        elif canon is None:
            notes.append("script byte table: n/a (give --tokenizer or --data to build the canonical table)")
        else:
            theirs, why = script_table(ev.script, tok_path)
            if theirs is None:
                notes.append(f"script byte table: could not be checked: {why}")
            else:
                diffs = table_differences(theirs, canon, len(canon.base_bytes))
                if diffs:
                    flags.append(f"{ev.script.name}: {theirs['builder']} differs from the canonical table: "
                                 + diffs[0])
                    notes += diffs[1:]
                else:
                    notes.append(f"{ev.script.name}: {theirs['builder']} equals the canonical table on every token id")
    if not (flags or notes):
        return Result(NAME, NA, "no scores, byte totals or byte table to compare")
    return conclude(NAME, flags, [], notes, "bytes, ratios and coverage agree with the canonical count")


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 1.0
