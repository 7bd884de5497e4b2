"""A sweep worker: joins the study (creating it the first time) and runs trials until the study
has `trials` finished ones (optuna mode) or the forward selection ends (greedy mode).

Optuna drives the loop (`Study.optimize`), which also keeps the heartbeat of SQL storages, fails
the stale trials of dead workers and re-queues them; a callback stops every worker once
the study as a whole has enough finished trials. Under torchrun, rank 0 runs the study and sends
each trial to the other ranks, which train and score their share.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pgolf.errors import PgolfError
from pgolf.runtime import Runtime, init_runtime, share_from_main, shutdown
from pgolf.sweep.greedy import BASE, candidate_keys, greedy_state, overrides_for
from pgolf.sweep.space import Dimension, Sweep, format_override
from pgolf.sweep.storage import GRACE_SECONDS, HEARTBEAT_SECONDS, open_storage, requeue_stale, storage_url
from pgolf.sweep.trial import PruneTrial, TrialTask, remove_trial_weights, run_trial

SWEEP_RECORD = "sweep.json"
POLL_SECONDS = 2.0


def is_heartbeat_enabled(storage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled as enabled

    return enabled(storage)


def study_name(sweep: Sweep) -> str:
    return sweep.study_name


def suggest(trial, dim: Dimension):
    if dim.kind == "categorical":
        return trial.suggest_categorical(dim.key, dim.choices)
    if dim.kind == "int":
        return trial.suggest_int(dim.key, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_float(dim.key, dim.low, dim.high, log=dim.log)


def make_study(sweep: Sweep, url: str, heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    f = sweep.file
    # Unseeded: workers sharing a study must not draw the same sequence of configurations.
    sampler = optuna.samplers.RandomSampler() if f.sampler == "random" else optuna.samplers.TPESampler()
    pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=f.prune_after_step),
              "halving": optuna.pruners.SuccessiveHalvingPruner(min_resource=max(f.prune_after_step, 1)),
              "none": optuna.pruners.NopPruner()}[f.pruner if f.mode == "optuna" else "none"]
    from sqlalchemy.exc import SQLAlchemyError

    storage = open_storage(url, heartbeat, grace)
    for attempt in range(5):  # two workers starting at once may both try to create the study
        try:
            return optuna.create_study(study_name=study_name(sweep), storage=storage, sampler=sampler,
                                       pruner=pruner, direction="minimize", load_if_exists=True)
        except (optuna.exceptions.DuplicatedStudyError, SQLAlchemyError):
            time.sleep(0.5 * (attempt + 1))
    raise PgolfError(f"could not open the study {study_name(sweep)!r} in {url}")


class Worker:
    def __init__(self, sweep: Sweep, out: Path, data: Path, tokenizer: str | None, runtime: Runtime,
                 log=print) -> None:
        self.sweep, self.out, self.data, self.tokenizer, self.runtime, self.log = sweep, out, data, tokenizer, runtime, log

    # ----------------------------------------------------------------- the objective (rank 0)
    def objective(self, trial) -> float:
        import optuna

        task = self.task_for(trial)
        if task is None:  # greedy: the search has ended (or another worker holds the last trials)
            trial.study.stop()
            trial.set_user_attr("idle", True)
            raise optuna.TrialPruned("nothing left to run")
        share_from_main({"task": task.as_dict()}, self.runtime)
        self.log(f"sweep: trial {trial.number}: {' '.join(task.overrides) or '(base preset)'}")

        def report(step: int, val_bpb: float) -> bool:
            trial.report(val_bpb, step)
            return trial.should_prune()

        try:
            result = run_trial(self.sweep, task, self.data, self.tokenizer, self.runtime, report)
        except PruneTrial as exc:
            remove_trial_weights(Path(task.directory))
            self.log(f"sweep: trial {trial.number} {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        trial.set_user_attr("seeds", result["seeds"])
        self.log(f"sweep: trial {trial.number} val_bpb {result['value']:.4f}")
        return result["value"]

    def task_for(self, trial) -> TrialTask | None:
        directory = str(self.out / "trials" / f"{trial.number:05d}")
        if self.sweep.file.mode == "optuna":
            if trial.user_attrs.get("base"):
                # Two workers opening an empty study at once may both enqueue the base; the lower
                # number counts.
                self.drop_if_duplicate(trial, lambda t: bool(t.user_attrs.get("base")))
            overrides = [format_override(d.key, suggest(trial, d)) for d in self.sweep.dimensions]
            trial.set_user_attr("overrides", overrides)
            return TrialTask(trial.number, overrides, directory)
        return self.greedy_task(trial, directory)

    def greedy_task(self, trial, directory: str) -> TrialTask | None:
        cands = self.sweep.candidates
        if "greedy_candidate" in trial.user_attrs:  # a re-queued trial of a dead worker: run it again
            r, c, kept = (trial.user_attrs[k] for k in ("greedy_round", "greedy_candidate", "greedy_kept"))
            return TrialTask(trial.number, overrides_for(kept, c, cands), directory)
        import optuna

        while True:
            if is_heartbeat_enabled(trial.study._storage):
                optuna.storages.fail_stale_trials(trial.study)  # a dead worker may hold this round open
            others = [t for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
            state = greedy_state(others, len(cands), candidate_keys(cands))
            if state.done:
                return None
            if state.todo:
                break
            time.sleep(POLL_SECONDS)  # this round's last trials run elsewhere; its result decides the next
        c = state.todo[0]
        for key, value in (("greedy_round", state.round), ("greedy_candidate", c), ("greedy_kept", state.kept)):
            trial.set_user_attr(key, value)
        # Another worker may have taken the same task an instant earlier: it counts, this one does not.
        self.drop_if_duplicate(trial, lambda t: t.user_attrs.get("greedy_round") == state.round
                               and t.user_attrs.get("greedy_candidate") == c)
        overrides = overrides_for(state.kept, c, cands)
        trial.set_user_attr("overrides", overrides)
        return TrialTask(trial.number, overrides, directory)

    @staticmethod
    def drop_if_duplicate(trial, same_task) -> None:
        """Prunes `trial` as a duplicate when an earlier trial (not itself a duplicate, and not failed:
        the re-queued copy of a dead worker's trial must run) has the same task."""
        import optuna
        from optuna.trial import TrialState

        twins = [t for t in trial.study.get_trials(deepcopy=False)
                 if t.number < trial.number and same_task(t) and t.user_attrs.get("duplicate_of") is None
                 and t.state != TrialState.FAIL]
        if twins:
            trial.set_user_attr("duplicate_of", twins[0].number)
            raise optuna.TrialPruned("duplicate of an earlier trial")

    # ----------------------------------------------------------------- the loops
    def run(self, study, requeue_after: float = 0.0) -> None:
        if requeue_after > 0:
            again = requeue_stale(study, requeue_after)
            if again:
                self.log(f"sweep: re-queued stale trials {again}")
        limit = self.sweep.file.trials if self.sweep.file.mode == "optuna" else None
        base = self.sweep.base_params() if limit else None
        if base is not None and not study.get_trials(deepcopy=False):
            study.enqueue_trial(base, user_attrs={"base": True}, skip_if_exists=True)  # trial 0: the reference
        callbacks = [stop_at_finished(limit)] if limit else []
        if limit is None or finished_trials(study) < limit:
            study.optimize(self.objective, callbacks=callbacks, catch=(PgolfError,),
                           gc_after_trial=True, show_progress_bar=False)

    def follow(self) -> None:
        """Ranks other than 0: run each trial rank 0 sends until it says stop."""
        while True:
            message = share_from_main(None, self.runtime)
            if message is None or "stop" in message:
                return
            task = TrialTask(**message["task"])
            try:
                run_trial(self.sweep, task, self.data, self.tokenizer, self.runtime, report=None)
            except PruneTrial:
                pass


def finished_trials(study) -> int:
    """Complete or pruned trials, not counting dropped duplicates (they ran nothing)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
               if t.user_attrs.get("duplicate_of") is None)


def stop_at_finished(limit: int):
    """A study callback: stop once `limit` trials have finished (Optuna's MaxTrialsCallback would
    count duplicates too)."""
    def callback(study, trial) -> None:
        if finished_trials(study) >= limit:
            study.stop()
    return callback


def run_sweep(sweep: Sweep, out: Path, data: Path, tokenizer: str | None = None, storage: str | None = None,
              device: str = "auto", heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS,
              requeue_after: float = 0.0) -> dict:
    """Run a worker until the study is done; returns where the study is (rank 0) or {} (others)."""
    out = Path(out)
    runtime = init_runtime(device)
    url = storage_url(out, storage)
    try:
        if runtime.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / SWEEP_RECORD).write_text(json.dumps({"sweep": sweep.origin, "set": sweep.extra_overrides,
                                                         "preset": sweep.preset_override, "storage": url,
                                                         "study": study_name(sweep)}, indent=1) + "\n")
            study = make_study(sweep, url, heartbeat, grace)
            worker = Worker(sweep, out, data, tokenizer, runtime, log=lambda s: print(s, file=sys.stderr, flush=True))
            try:
                worker.run(study, requeue_after)
            finally:
                share_from_main({"stop": True}, runtime)
            return {"storage": url, "study": study_name(sweep)}
        Worker(sweep, out, data, tokenizer, runtime).follow()
        return {}
    finally:
        shutdown()


__all__ = ["run_sweep", "make_study", "study_name", "BASE"]
