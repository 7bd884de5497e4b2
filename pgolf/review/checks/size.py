"""Size: code bytes + compressed model bytes ≤ 16,000,000, counted as the contest counts them.

Measured on the files where they are here (the artifact and the shipped `train_gpt.py`); where the
artifact is absent, the totals the logs and submission.json report, labelled as reported. The
records from #1530 on ship a readable script and count the compressed wrapper the script computes
of itself; the reviewers accepted that, so it is `suspect` (not FLAG) when only the shipped file's
own bytes push the total over.
"""

from __future__ import annotations

from pgolf.review.contest import BUDGET_BYTES
from pgolf.rundir import ARTIFACT_FILE, SCRIPT_FILE
from pgolf.review.evidence import Evidence
from pgolf.review.logs import seed_of
from pgolf.review.result import NA, Result, conclude

NAME = "size"


def check(ev: Evidence, options: dict) -> Result:
    budget = options.get("budget_bytes", BUDGET_BYTES)
    lines, flags, suspects = [], [], []
    script_bytes = ev.script.stat().st_size if ev.script else None
    for path, res in ev.results:  # pgolf runs: the artifact and the exported script as they lie here
        pack = res.get("pack", {})
        art = path.parent / ARTIFACT_FILE
        code = path.parent / SCRIPT_FILE
        if art.is_file() and code.is_file():
            measured = art.stat().st_size + code.stat().st_size
            lines.append(f"{path.parent}: measured {measured:,} B = model.pgolf {art.stat().st_size:,} + "
                         f"train_gpt.py {code.stat().st_size:,}")
            if pack.get("total_bytes") not in (None, measured):
                flags.append(f"{path}: reports {pack['total_bytes']:,} B, the files measure {measured:,} B")
        else:
            measured = pack.get("total_bytes")
            lines.append(f"{path}: reported {measured:,} B (artifact or script not here)")
        if measured is not None and measured > budget:
            flags.append(f"{path.parent}: {measured:,} B is over the {budget:,}-byte cap by {measured - budget:,}")
    for log in ev.logs if not ev.results else []:
        total = log.last("submission_bytes") or log.last("pack_total_bytes")
        model = log.last("model_bytes")
        counted = log.last("code_bytes_counted")
        if total is None and model is None:
            continue
        if total is not None:
            lines.append(f"{total.where(log)}: reported {total.value:,} B")
            if total.value > budget:
                flags.append(f"{total.where(log)}: reported {total.value:,} B is over the {budget:,}-byte cap")
        if model is not None and counted is not None and total is not None and model.value + counted.value != total.value:
            flags.append(f"{total.where(log)}: model {model.value:,} + code {counted.value:,} ≠ the reported total")
        if model is not None and script_bytes is not None:
            shipped = model.value + script_bytes
            if shipped > budget and (total is None or total.value <= budget):
                said = f"{counted.value:,} B" if counted else "its own count"
                suspects.append(f"{log.path.name}: counted with the script's compressed code "
                                f"({said}); the shipped train_gpt.py's own "
                                f"{script_bytes:,} B + model {model.value:,} B = {shipped:,} B is over the cap "
                                "(the reviewers accepted the compressed count)")
    sub = ev.submission or {}
    per_seed = {str(k): v for k, v in (sub.get("seed_results") or {}).items()}
    for key in ("bytes_total", "artifact_bytes_max"):
        if isinstance(sub.get(key), int):
            lines.append(f"submission.json {key}: {sub[key]:,} B")
            if sub[key] > budget:
                flags.append(f"submission.json {key} {sub[key]:,} B is over the {budget:,}-byte cap")
    for log in ev.logs:
        entry = per_seed.get(str(seed_of(log)))
        total = log.last("submission_bytes")
        if entry and total is not None and entry.get("artifact_bytes") not in (None, total.value):
            flags.append(f"submission.json seed {seed_of(log)}: artifact_bytes {entry['artifact_bytes']:,} ≠ "
                         f"{total.value:,} in {total.where(log)}")
    for log in ev.logs:  # the code a log counted against the code shipped here
        ran = log.last("code_bytes_raw") or (log.last("code_bytes_counted") if log.dialect == "pgolf" else None)
        if ran is not None and script_bytes is not None and ran.value != script_bytes:
            lines.append(f"{ran.where(log)}: the run's script had {ran.value:,} B, the shipped train_gpt.py has "
                         f"{script_bytes:,} B (not the file that ran)")
    for art in ev.artifacts if not ev.results else []:
        if script_bytes is not None:
            measured = art.stat().st_size + script_bytes
            lines.append(f"measured {measured:,} B = {art.name} {art.stat().st_size:,} + train_gpt.py {script_bytes:,}")
            if measured > budget:
                flags.append(f"{art.name} + train_gpt.py = {measured:,} B is over the {budget:,}-byte cap")
    if not lines:
        return Result(NAME, NA, "no artifact here and no size in the logs or submission.json")
    measured_any = any("measured" in line for line in lines)
    return conclude(NAME, flags, suspects, lines,
                    f"≤ {budget:,} B ({'measured' if measured_any else 'as reported: no artifact here'})")
