"""What a review has to go on: the files of a records folder, a pgolf run directory, or one log.

A records folder in the contest's layout holds README.md, submission.json, train_gpt.py, one log
per seed and perhaps the artifact; a pgolf run directory holds results.json, train.log, state.json
and model.pgolf (`pgolf run --out W` keeps it at W/run); `pgolf seeds --out` holds one per seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pgolf.errors import DataError
from pgolf.review.contest import tokenizer_family
from pgolf.review.logs import Log
from pgolf.rundir import ARTIFACT_FILE, RESULTS_FILE, RUN_SUBDIR, SCRIPT_FILE, TRAIN_LOG_FILE

ARTIFACT_SUFFIXES = (".pgolf", ".ptz")  # pgolf artifacts; the records' final_model.int6.ptz etc.


@dataclass
class Evidence:
    root: Path
    kind: str  # "records folder", "pgolf run", "pgolf seeds", "log"
    logs: list[Log] = field(default_factory=list)
    submission: dict | None = None
    submission_path: Path | None = None
    script: Path | None = None
    artifacts: list[Path] = field(default_factory=list)
    results: list[tuple[Path, dict]] = field(default_factory=list)  # pgolf results.json of each run
    readme: Path | None = None


def _is_log(p: Path) -> bool:
    return p.is_file() and (p.suffix in (".log", ".txt") and p.name not in ("requirements.txt",))


def gather(path: str | Path) -> Evidence:
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: not found (give a records folder, a pgolf run directory or a log file)")
    if root.is_file():
        return Evidence(root, "log", logs=[Log.read(root)])
    ev = Evidence(root, "records folder")
    runs = [r for r in (root, root / RUN_SUBDIR) if (r / RESULTS_FILE).is_file()]
    runs += sorted(p.parent.parent for p in root.glob(f"seed_*/{RUN_SUBDIR}/{RESULTS_FILE}")) if not runs else []
    if runs:
        ev.kind = "pgolf run" if len(runs) == 1 else "pgolf seeds"
        for run in runs:
            run_dir = run if (run / RESULTS_FILE).is_file() else run / RUN_SUBDIR
            ev.results.append((run_dir / RESULTS_FILE, json.loads((run_dir / RESULTS_FILE).read_text())))
            if (run_dir / TRAIN_LOG_FILE).is_file():
                ev.logs.append(Log.read(run_dir / TRAIN_LOG_FILE))
            if (run_dir / ARTIFACT_FILE).is_file():
                ev.artifacts.append(run_dir / ARTIFACT_FILE)
            if ev.script is None and (run_dir / SCRIPT_FILE).is_file():
                ev.script = run_dir / SCRIPT_FILE
        return ev
    ev.logs = [Log.read(p) for p in sorted(root.iterdir()) if _is_log(p)]
    if (root / "submission.json").is_file():
        ev.submission_path = root / "submission.json"
        try:
            ev.submission = json.loads(ev.submission_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{ev.submission_path}: invalid JSON ({exc.msg})") from None
    if (root / SCRIPT_FILE).is_file():
        ev.script = root / SCRIPT_FILE
    if (root / "README.md").is_file():
        ev.readme = root / "README.md"
    ev.artifacts = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(ARTIFACT_SUFFIXES))
    if not ev.logs and ev.submission is None:
        raise DataError(f"{root}: no logs, no submission.json and no pgolf results.json: nothing to check")
    return ev


def contest_family(ev: Evidence) -> str | None:
    """The contest tokenizer the logs name (a path or a setting), if any."""
    for log in ev.logs:
        for key in ("tokenizer_path", "datasets_dir", "data_path", "caseops_enabled"):
            f = log.hyperparameters.get(key)
            if f is None:
                continue
            if key == "caseops_enabled" and str(f.value) == "True":
                return "sp8192-caseops"
            fam = tokenizer_family(str(f.value))
            if fam:
                return fam
        for line in log.lines[:40]:
            if line.startswith("val_loader") and "tokenizer:" in line:
                fam = tokenizer_family(line)
                if fam:
                    return fam
    return None
