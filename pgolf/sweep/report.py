"""What a sweep leaves to look at, in its directory:

- `trials.json`: every trial (number, state, val_bpb, overrides, steps, seconds, why pruned);
- `best.toml`: the best trial's overrides as a preset that `extends` the base, ready for
  `pgolf run --preset OUT/best.toml`;
- `plots/`: optimization history, parameter importances and parallel coordinates (Optuna's
  matplotlib plots), embedded by `pgolf report OUT` in its HTML page.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import tomli_w

from pgolf.config import apply_overrides
from pgolf.errors import DataError
from pgolf.io import atomic_write_bytes, write_json
from pgolf.sweep.space import Sweep, load_sweep
from pgolf.sweep.worker import SWEEP_RECORD, finished_trials, make_study

TRIALS_FILE = "trials.json"
BEST_PRESET_FILE = "best.toml"


def trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("idle"):
            continue  # a worker's last look for work in a finished greedy search
        seeds = t.user_attrs.get("seeds", [])
        note = ""
        if t.user_attrs.get("duplicate_of") is not None:
            note = f"duplicate of {t.user_attrs['duplicate_of']}"
        elif "failed_trial" in t.system_attrs:
            note = f"retry of {t.system_attrs['failed_trial']}"
        elif t.state.name == "PRUNED" and t.intermediate_values:
            last = max(t.intermediate_values)
            note = f"pruned at step {last} (val_bpb {t.intermediate_values[last]:.4f})"
        if t.user_attrs.get("base"):
            note = "the base preset"
        rows.append({"number": t.number, "state": t.state.name,
                     "val_bpb": t.value if t.state.name == "COMPLETE" else None,  # a pruned trial has no final score
                     "overrides": t.user_attrs.get("overrides", []),
                     "greedy_round": t.user_attrs.get("greedy_round"),
                     "steps": [s["steps"] for s in seeds], "seeds": [s["seed"] for s in seeds],
                     "seconds": (t.duration.total_seconds() if t.duration else None), "note": note})
    return rows


def best_preset_toml(sweep: Sweep, overrides: list[str], value: float, n_trials: int) -> str:
    """The best overrides (after the sweep's fixed ones) as a preset extending the base."""
    ref = sweep.base_ref or sweep.file.preset
    table: dict[str, Any] = {"extends": [str(Path(ref).resolve()) if ref.endswith(".toml") else ref],
                             "description": f"{sweep.base.name} tuned by pgolf sweep {Path(sweep.origin).name}: "
                                            f"best of {n_trials} trials, round-trip val_bpb {value:.4f}"}
    apply_overrides(table, list(sweep.file.set) + sweep.extra_overrides + list(overrides))
    return "# Written by `pgolf sweep`; the values below override the preset it extends.\n" + tomli_w.dumps(table)


def plot_study(study, folder: Path) -> list[Path]:
    """Optuna's matplotlib plots of the study (those its trials allow), as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pgolf.submit.plots import save_png
    from optuna.visualization import matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    plots = [("history", ovm.plot_optimization_history)]
    if len(done) >= 2 and any(t.params for t in done):
        plots += [("importances", ovm.plot_param_importances), ("parallel", ovm.plot_parallel_coordinate)]
    written = []
    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError):
                continue  # e.g. importances of a parameter that never varied
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()
        path = folder / f"{name}.png"
        save_png(fig, path, 100)
        plt.close(fig)
        written.append(path)
    return written


def open_sweep(directory: Path):
    """(sweep, study) of a sweep directory written by `pgolf sweep --out`."""
    record_path = Path(directory) / SWEEP_RECORD
    if not record_path.is_file():
        raise DataError(f"{directory}: not a sweep directory (no {SWEEP_RECORD}; written by pgolf sweep --out)")
    record = json.loads(record_path.read_text())
    sweep = load_sweep(record["sweep"], record.get("set"), record.get("preset"))
    return sweep, make_study(sweep, record["storage"])


def write_outputs(directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    sweep, study = open_sweep(directory)
    rows = trial_rows(study)
    write_json(directory / TRIALS_FILE, {"study": study.study_name, "mode": sweep.file.mode, "trials": rows})
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["val_bpb"] is not None]
    out: dict[str, Any] = {"directory": str(directory), "study": study.study_name, "trials": rows,
                           "finished": finished_trials(study)}
    if complete:
        best = min(complete, key=lambda r: r["val_bpb"])
        if sweep.file.mode == "greedy":
            from pgolf.sweep.greedy import candidate_keys, greedy_state

            state = greedy_state(study.get_trials(deepcopy=False), len(sweep.candidates),
                                 candidate_keys(sweep.candidates))
            out["greedy"] = {"kept": [sweep.candidates[c] for c in state.kept], "rounds": state.history,
                             "done": state.done}
        text = best_preset_toml(sweep, best["overrides"], best["val_bpb"], len(complete))
        atomic_write_bytes(directory / BEST_PRESET_FILE, text.encode("utf-8"))
        out.update(best=best, best_preset=str(directory / BEST_PRESET_FILE))
    out["plots"] = [str(p) for p in plot_study(study, directory / "plots")] if complete else []
    return out
