"""Normalization and score-before-adapt, recorded over a whole evaluation rather than a window.

`pgolf eval` and `pgolf run` pass a recorder to the real scoring pass: every state update is
checked as it is reported, and the scored distribution is summed over the vocabulary (and
compared with what was scored) at `STREAM_SAMPLES` positions spread uniformly over the entire
stream plus the first position after each update. A method that behaves for the first N tokens
and cheats afterwards is caught wherever N lies. Under torchrun each rank records its own share
and the verdicts are merged.
"""

from __future__ import annotations

from dataclasses import asdict

import torch.distributed as dist

from pgolf.audit.checks import recorded_checks
from pgolf.audit.recorder import AuditRecorder
from pgolf.runtime import Runtime

STREAM_SAMPLES = 256


def stream_recorder(n_targets: int, samples: int = STREAM_SAMPLES) -> AuditRecorder:
    return AuditRecorder(n_targets, samples=samples)


def stream_verdict(rec: AuditRecorder, runtime: Runtime) -> dict:
    checks = [asdict(c) for c in recorded_checks(rec)]
    per_rank = [checks]
    if runtime.distributed:
        per_rank = [None] * runtime.world_size
        dist.all_gather_object(per_rank, checks)
    merged = []
    for i, first in enumerate(per_rank[0]):
        same = [r[i] for r in per_rank]
        bad = [c for c in same if not c["passed"]]
        merged.append({"name": first["name"], "passed": not bad, "detail": (bad or same)[0]["detail"]
                       + (f" (rank 0 of {len(same)})" if len(same) > 1 and not bad else ""),
                       "evidence": [e for c in bad for e in c["evidence"]][:5]})
    flagged = [c["name"] for c in merged if not c["passed"]]
    return {"verdict": "flagged" if flagged else "pass", "flagged": flagged, "checks": merged,
            "scope": "whole evaluation", "targets": int(rec.n_targets), "samples": len(rec.masses),
            "updates": rec.updates}


def evaluate_recorded(path, data_dir, runtime: Runtime, **options) -> dict:
    """`pgolf.evaluate.artifact_eval.evaluate_artifact` with the whole-evaluation record: its
    verdict is the result's `stream_audit` (and a warning when it flags)."""
    from pgolf.evaluate.artifact_eval import evaluate_artifact

    rec = stream_recorder(0)
    out = evaluate_artifact(path, data_dir, runtime, observer=rec, **options)
    out["stream_audit"] = stream_verdict(rec, runtime)
    if out["stream_audit"]["flagged"]:
        out["warnings"].append("the whole-evaluation checks flagged: " + ", ".join(out["stream_audit"]["flagged"]))
    return out
