"""`pgolf check PATH`: every check over one submission, in the order a reviewer reads it."""

from __future__ import annotations

import time
from pathlib import Path

from pgolf.review.checks import accounting, legality, overlap, seeds, size, timing
from pgolf.review.evidence import gather
from pgolf.review.result import FLAG, SUSPECT, Result, render, worst

CHECKS = (size, overlap, accounting, seeds, timing, legality)

# what no check here can establish, whatever it is given (printed with every table)
CANNOT = ("that the logs are the runs' own (a log is text: the checks read what it states)",
          "that the artifact was made by the script, or scores what the logs say, without rerunning it on 8 GPUs",
          "legality of code it did not run: reading finds known patterns only (suspect, never proof)")


def check_submission(path: str | Path, data: Path | None = None, tokenizer: str | None = None,
                     against: list[Path] | None = None, strict: bool = False, max_overlap: float | None = None) -> dict:
    t0 = time.perf_counter()
    ev = gather(path)
    options = {"data": Path(data) if data else None, "tokenizer": tokenizer, "against": list(against or []),
               "strict": strict}
    if max_overlap is not None:
        options["max_overlap"] = max_overlap
    results: list[Result] = [c.check(ev, options) for c in CHECKS]
    statuses = [r.status for r in results]
    failed = FLAG in statuses or (strict and SUSPECT in statuses)
    return {"path": str(path), "kind": ev.kind, "verdict": worst(statuses), "failed": failed,
            "checks": [r.as_dict() for r in results], "cannot_prove": list(CANNOT),
            "seconds": time.perf_counter() - t0, "_results": results}


def report(result: dict) -> str:
    body = render(result["_results"], f"{result['path']} ({result['kind']})")
    tail = [f"verdict: {result['verdict']}" + (" (exit 1)" if result["failed"] else ""),
            "not provable here: " + "; ".join(result["cannot_prove"])]
    return body + "\n" + "\n".join(tail)
