"""Legality: by experiment for pgolf's own artifacts, by reading for anyone else's.

A pgolf run directory carries its audit (`model.pgolf.audit.json`: future invariance, single pass,
normalization over the whole alphabet, per composition) and the whole-evaluation record of its
scoring pass (`stream_audit` in results.json); with `--data` and the artifact here, the audit is
run again. A pgolf records folder carries the verdicts in submission.json.

Anyone else's script is read for the known illegal patterns, each reported as `suspect` with its
lines — a reading, never a proof: pre-quantization TTT on validation tokens (#1972), SLOT or TTT
that fits on the tokens it scores, compile warm-up on validation tokens (the #677 pattern, #1530),
byte-level mixtures not normalized over the token alphabet (PPM-D, excluded), n-gram experts gated
on the target token (the within-word / word-start / agreement channels).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pgolf.review.evidence import Evidence
from pgolf.review.result import FLAG, NA, PASS, SUSPECT, Result

NAME = "legality"

# (pattern name, regex over a code line, regex a matching line must not match); case-insensitive
PATTERNS: list[tuple[str, str, str | None]] = [
    ("pre-quantization TTT on validation tokens", r"pre_?quant\w*ttt|ttt\w*pre_?quant|prequant_ttt", None),
    ("SLOT: a delta fitted on the window it scores", r"\bslot_(?:steps|lr|enabled|delta)\b|\bdef\s+\w*slot\w*\(", r"causal"),
    ("compile warm-up on validation tokens", r"warm\w*\W.*\bval_(?:tokens|data|loader)\b", r"random|no val|synthetic"),
    ("byte-level mixture (not normalized over the token alphabet)", r"\bppm\b|ppm_d|byte_?mix|byte[-_ ]level mix", None),
    ("n-gram channel gated on the target token", r"within_word|word_start_(?:hint|boost|channel)|agree(?:ment)?_(?:hint|boost|channel)", r"=\s*(?:0|False)\b"),
]
# settings that switch a known pattern on
SETTINGS: list[tuple[str, str]] = [
    (r"pre_?quant\w*ttt\w*(enabled)?$", "pre-quantization TTT on validation tokens"),
    (r"^slot(_enabled)?$", "SLOT: a delta fitted on the window it scores"),
    (r"(within_word|word_start|agreement)\w*(enabled)?$", "n-gram channel gated on the target token"),
]


def read_script(path: Path) -> list[str]:
    found = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        code = line.split("#", 1)[0]
        for name, pattern, unless in PATTERNS:
            if re.search(pattern, code, re.I) and not (unless and re.search(unless, code, re.I)):
                found.append(f"{path.name}:{n}: {name}: {line.strip()[:100]}")
    return found


def read_settings(ev: Evidence) -> list[str]:
    found = []
    for log in ev.logs:
        for key, fact in log.hyperparameters.items():
            for pattern, name in SETTINGS:
                if re.search(pattern, key.split(".")[-1], re.I) and str(fact.value) in ("True", "1", "true"):
                    found.append(f"{log.path.name}:{fact.line}: {name}: {key} = {fact.value}")
    return sorted(set(found))


def pgolf_audits(ev: Evidence, options: dict) -> tuple[list[str], list[str]] | None:
    """(flags, notes) from pgolf's own audit records, or None when there are none."""
    flags, notes = [], []
    seen = False
    for path, res in ev.results:
        run = path.parent
        record = run / "model.pgolf.audit.json"
        if options.get("data") is not None and (run / "model.pgolf").is_file():
            from pgolf.audit.run import audit_artifact
            from pgolf.runtime import Runtime

            for entry in res.get("evals", []):
                methods = entry["methods"].split(",")
                a = audit_artifact(run / "model.pgolf", options["data"], Runtime(), methods,
                                   tokenizer=options.get("tokenizer"), limit=entry.get("audit_tokens") or 8192,
                                   stream=None, probe_positions=0)
                seen = True
                (flags if a["verdict"] != "pass" else notes).append(
                    f"{run}: audit rerun of [{entry['methods']}]: {a['verdict']} {', '.join(a['flagged'])}".rstrip())
        elif record.is_file():
            for methods, entry in json.loads(record.read_text()).items():
                seen = True
                (flags if entry.get("verdict") != "pass" else notes).append(
                    f"{record}: [{methods}] recorded audit: {entry.get('verdict')}")
        stream = res.get("eval", {}).get("stream_audit")
        if stream:
            seen = True
            (flags if stream.get("flagged") else notes).append(
                f"{path}: whole-evaluation record: {stream.get('verdict')} {', '.join(stream.get('flagged', []))}".rstrip())
    for s in (ev.submission or {}).get("seeds", []):
        if isinstance(s, dict) and "audit" in s:
            seen = True
            (flags if s["audit"] != "pass" else notes).append(
                f"submission.json seed {s.get('seed')}: pgolf audit of [{s.get('methods')}]: {s['audit']}")
            if s.get("whole_evaluation") not in (None, "pass", "not recorded"):
                flags.append(f"submission.json seed {s.get('seed')}: whole-evaluation checks: {s['whole_evaluation']}")
    return (flags, notes) if seen else None


def check(ev: Evidence, options: dict) -> Result:
    audited = pgolf_audits(ev, options)
    reading = read_settings(ev) + (read_script(ev.script) if ev.script else [])
    if audited is not None:
        flags, notes = audited
        if flags:
            return Result(NAME, FLAG, flags[0], flags[1:] + notes)
        return Result(NAME, PASS, "pgolf's audit (by experiment) passes every composition", notes)
    if reading:
        return Result(NAME, SUSPECT, f"{len(reading)} line(s) match a known illegal pattern (a reading, not a proof)",
                      reading[:12] + ([f"... and {len(reading) - 12} more"] if len(reading) > 12 else []))
    if ev.script is None and not ev.logs:
        return Result(NAME, NA, "no script and no logs to read")
    return Result(NAME, PASS if ev.script else NA,
                  "no known illegal pattern in the script or the logs' settings (a reading, not a proof)"
                  if ev.script else "no script to read; the logs' settings show no known illegal pattern")
