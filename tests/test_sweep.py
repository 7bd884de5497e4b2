"""`pgolf sweep`: search spaces checked on load, trials that train/pack/score, a study shared by
workers (SQLite), a killed worker's trial re-queued, greedy forward selection, and the outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pgolf.cli import main
from pgolf.errors import ConfigError
from pgolf.sweep.greedy import BASE, greedy_state
from pgolf.sweep.space import load_sweep
from tests.conftest import TINY_OVERRIDES

SPACE = """
preset = "cpu-mini"
set = {fixed}
trials = {trials}
steps = 4
limit_val_tokens = 1024
pruner = "none"
sampler = "random"
mode = "{mode}"

[space."train.matrix_lr"]
low = 0.01
high = 0.08
log = true
[space."train.warmdown_iters"]
low = 1
high = 3
{extra}
"""


def write_space(tmp_path: Path, trials: int = 3, mode: str = "optuna", extra: str = "", name: str = "space") -> Path:
    fixed = json.dumps(TINY_OVERRIDES + ["train.val_every=2"])
    path = tmp_path / f"{name}.toml"
    path.write_text(SPACE.format(fixed=fixed, trials=trials, mode=mode, extra=extra))
    return path


def study_trials(out: Path):
    import optuna

    return optuna.load_study(study_name="space", storage=f"sqlite:///{out / 'study.db'}").get_trials()


@pytest.mark.parametrize("extra,message", [
    ('[space."train.lr"]\nlow = 0.1\nhigh = 0.2', "unknown key 'train.lr'"),
    ('[space."train.scalar_lr"]\nlow = 0.2\nhigh = 0.1', "empty range: low 0.2 must be below high 0.1"),
    ('[space."train.seq_len"]\nlow = 0.5\nhigh = 64.5', "train.seq_len: expected int, got float"),
    ('[space."train.scalar_lr"]\nchoices = []', "expected a non-empty list"),
    ('[space."train.scalar_lr"]\nlow = 0.0\nhigh = 0.1\nlog = true', "a log range needs low > 0"),
])
def test_a_bad_search_space_is_a_one_line_error(tmp_path, capsys, tiny_data, extra, message):
    path = write_space(tmp_path, extra=extra)
    with pytest.raises(ConfigError, match=message):
        load_sweep(path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "s"), "--data", str(tiny_data)]) == 2
    err = capsys.readouterr().err
    assert message.split(":")[0] in err and "Traceback" not in err and err.count("\n") == 1


def test_a_sweep_runs_its_trials_and_writes_the_best_preset_table_and_plots(tmp_path, tiny_data, capsys):
    from pgolf.job.preset import load_preset

    out = tmp_path / "s"
    assert main(["sweep", str(write_space(tmp_path)), "--out", str(out), "--data", str(tiny_data), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [t["state"] for t in r["trials"]] == ["COMPLETE"] * 3
    assert r["trials"][0]["note"] == "the base preset"  # scored first, the reference for the rest
    assert r["trials"][0]["overrides"] == ["train.matrix_lr=0.04", "train.warmdown_iters=3"]
    assert all(len(t["overrides"]) == 2 and t["steps"] == [4] for t in r["trials"])
    best = min(r["trials"], key=lambda t: t["val_bpb"])
    assert r["best"]["number"] == best["number"]
    preset = load_preset(r["best_preset"])  # a ready preset: extends cpu-mini, carries the best values
    want = {o.split("=")[0]: float(o.split("=")[1]) for o in best["overrides"]}
    assert preset.train.matrix_lr == pytest.approx(want["train.matrix_lr"])
    assert preset.train.warmdown_iters == want["train.warmdown_iters"] and preset.model.num_layers == 2
    assert {Path(p).name for p in r["plots"]} == {"history.png", "importances.png", "parallel.png"}
    assert main(["report", str(out)]) == 0 and "pgolf sweep" in (out / "report.html").read_text()
    capsys.readouterr()
    # The study stays: running the sweep again adds nothing (it already has its trials).
    assert main(["sweep", str(write_space(tmp_path)), "--out", str(out), "--data", str(tiny_data), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["trials"]) == 3


def _worker(space: Path, out: Path, data: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "pgolf", "sweep", str(space), "--out", str(out), "--data", str(data),
                             "--worker", "--device", "cpu", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_base_and_set_on_the_command_line_make_their_own_study_and_reach_the_best_preset(tmp_path, tiny_data, capsys):
    from pgolf.job.preset import load_preset

    space, out = write_space(tmp_path, trials=1), tmp_path / "s"
    assert main(["sweep", str(space), "--out", str(out), "--data", str(tiny_data), "--base", "naive-baseline",
                 "--set", "train.muon_backend_steps=4", *[a for o in TINY_OVERRIDES for a in ("--set", o)], "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["study"] == "space-naive-baseline" and r["trials"][0]["state"] == "COMPLETE"
    best = load_preset(r["best_preset"])  # extends the replaced base and keeps the command line's overrides
    assert best.name != "cpu-mini" and best.train.muon_backend_steps == 4
    assert main(["sweep", "--out", str(out), "--report-only", "--json"]) == 0  # reloads the same study
    assert json.loads(capsys.readouterr().out)["study"] == "space-naive-baseline"


def test_a_second_copy_of_the_base_trial_is_dropped_without_running(tmp_path, tiny_data, capsys):
    """Two workers opening an empty study at once may both enqueue the base; made to happen here."""
    import optuna

    from pgolf.sweep.worker import make_study

    space, out = write_space(tmp_path, trials=2), tmp_path / "s"
    sweep = load_sweep(space)
    out.mkdir()
    study = make_study(sweep, f"sqlite:///{out / 'study.db'}")
    for _ in range(2):
        # What enqueue_trial writes, twice (it skips an existing copy, but not one another worker adds meanwhile).
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, params={}, distributions={},
                                                  user_attrs={"base": True},
                                                  system_attrs={"fixed_params": sweep.base_params()}))
    assert main(["sweep", str(space), "--out", str(out), "--data", str(tiny_data), "--json"]) == 0
    capsys.readouterr()
    trials = study_trials(out)
    assert trials[1].user_attrs.get("duplicate_of") == 0 and trials[1].state.name == "PRUNED"
    assert not (out / "trials" / "00001").exists()  # it trained nothing
    counted = [t for t in trials if t.user_attrs.get("duplicate_of") is None]
    assert [t.state.name for t in counted] == ["COMPLETE", "COMPLETE"]  # the duplicate did not use up a trial
    assert counted[0].params == sweep.base_params() != counted[1].params


def test_a_token_budget_gives_each_trial_the_steps_its_batch_buys(tmp_path):
    from pgolf.job.preset import with_overrides

    path = write_space(tmp_path)
    path.write_text(path.read_text().replace("steps = 4", "tokens = 65536"))
    sweep = load_sweep(path)
    per_step = sweep.base.train.tokens_per_step
    assert sweep.budget_overrides(sweep.base) == [f"train.iterations={65536 // per_step}", "train.max_wallclock_seconds=0"]
    half = with_overrides(sweep.base, [f"train.tokens_per_step={per_step // 2}"])
    assert sweep.budget_overrides(half)[0] == f"train.iterations={2 * (65536 // per_step)}"
    path.write_text(path.read_text().replace("tokens = 65536", "tokens = 65536\nsteps = 3"))
    with pytest.raises(ConfigError, match="exactly one trial budget"):
        load_sweep(path)


@pytest.mark.slow
def test_two_workers_share_one_study_with_no_lost_or_duplicated_trial(tmp_path, tiny_data):
    space, out = write_space(tmp_path, trials=6), tmp_path / "s"
    workers = [_worker(space, out, tiny_data) for _ in range(2)]
    logs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [e[-2000:] for _, e in logs]
    # Both may enqueue the base trial when they open the empty study at once: the later copy is
    # dropped as a duplicate before it runs anything.
    everything = study_trials(out)
    dropped = [t for t in everything if t.user_attrs.get("duplicate_of") is not None]
    assert all(t.state.name == "PRUNED" and t.user_attrs.get("base") for t in dropped)
    trials = [t for t in everything if t not in dropped]
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "FAIL" not in states and "WAITING" not in states
    assert 6 <= states.count("COMPLETE") <= 7  # both may start a last trial at once; none is lost
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers)
    both = [sum(f"trial {n}:" in e for n in numbers) for _, e in logs]
    assert sum(both) == len(trials) and all(b >= 1 for b in both)  # each trial ran once, on one worker, both worked
    assert len({tuple(t.params.items()) for t in trials}) == len(trials)  # distinct configurations


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_requeued_and_finished_by_the_next(tmp_path, tiny_data):
    space = write_space(tmp_path, trials=3)
    # Trials of 4 s of wallclock (not a step count, which a fast machine may finish before the kill,
    # 1 s after the trial's log appears).
    text = space.read_text().replace("steps = 4", "budget_seconds = 4")
    space.write_text(text.replace('"train.val_every=2"', '"train.val_every=2", "train.iterations=1000000"'))
    out = tmp_path / "s"
    first = _worker(space, out, tiny_data, "--heartbeat", "1", "--grace", "3")
    deadline = time.time() + 300
    while not (out / "trials" / "00000" / "seed_1337" / "train.log").is_file() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    time.sleep(4)  # past the grace period: its heartbeat has stopped
    second = _worker(space, out, tiny_data, "--heartbeat", "1", "--grace", "3")
    _, err = second.communicate(timeout=900)
    assert second.returncode == 0, err[-2000:]
    trials = {t.number: t for t in study_trials(out)}
    assert trials[0].state.name == "FAIL"  # the killed worker's trial
    retry = [t for t in trials.values() if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == trials[0].params
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 3


def _t(number, r, c, value, state="COMPLETE", **attrs):
    from optuna.trial import TrialState

    return SimpleNamespace(number=number, value=value, state=TrialState[state],
                           user_attrs={"greedy_round": r, "greedy_candidate": c, **attrs})


def test_greedy_state_keeps_the_best_candidate_while_it_improves():
    s = greedy_state([], 3)
    assert (s.round, s.todo, s.done) == (0, [BASE, 0, 1, 2], False)
    round0 = [_t(0, 0, BASE, 2.0), _t(1, 0, 0, 1.9), _t(2, 0, 1, 1.7), _t(3, 0, 2, None, "RUNNING")]
    s = greedy_state(round0, 3)
    assert (s.round, s.todo, s.running) == (0, [], 1)  # wait: the round's last trial decides
    round0[3] = _t(3, 0, 2, 1.8)
    s = greedy_state(round0, 3)
    assert (s.kept, s.round, s.todo) == ([1], 1, [0, 2])
    round1 = round0 + [_t(4, 1, 0, 1.75), _t(5, 1, 2, 1.6, duplicate_of=None), _t(6, 1, 2, 1.5, duplicate_of=5)]
    s = greedy_state(round1, 3)
    assert (s.kept, s.round, s.todo) == ([1, 2], 2, [0])
    s = greedy_state(round1 + [_t(7, 2, 0, 1.65)], 3)  # no longer improves: done, keeping [1, 2]
    assert s.done and s.kept == [1, 2] and [h["kept"] for h in s.history] == [True, True, False]
    failed = greedy_state(round0[:3] + [_t(3, 0, 2, None, "FAIL")], 3)  # failed on its own: tried, no value
    assert failed.kept == [1] and failed.round == 1


def test_greedy_does_not_retry_another_value_of_a_key_it_has_kept():
    from pgolf.sweep.greedy import candidate_keys

    cands = [["train.warmdown_fraction=0.7"], ["train.warmdown_fraction=0.95"], ["train.min_lr=0.1", "train.seed=3"]]
    keys = candidate_keys(cands)
    assert keys == [{"train.warmdown_fraction"}, {"train.warmdown_fraction"}, {"train.min_lr", "train.seed"}]
    round0 = [_t(0, 0, BASE, 2.0), _t(1, 0, 0, 1.7), _t(2, 0, 1, 1.8), _t(3, 0, 2, 1.9)]
    s = greedy_state(round0, 3, keys)
    assert (s.kept, s.round, s.todo) == ([0], 1, [2])  # 0.95 was compared with 0.7 in round 0
    s = greedy_state(round0 + [_t(4, 1, 2, 1.6)], 3, keys)
    assert s.done and s.kept == [0, 2]  # nothing left that sets a new key


def test_greedy_forward_selection_runs_through_the_study(tmp_path, tiny_data, capsys):
    extra = '[greedy]\ncandidates = [["train.matrix_lr=0.02"], ["train.warmdown_iters=1"]]'
    space = write_space(tmp_path, mode="greedy", extra=extra)
    out = tmp_path / "g"
    assert main(["sweep", str(space), "--out", str(out), "--data", str(tiny_data), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    rounds = r["greedy"]["rounds"]
    assert r["greedy"]["done"] and [t["greedy_round"] for t in r["trials"]][:3] == [0, 0, 0]
    assert r["trials"][0]["overrides"] == []  # round 0 scores the base preset first
    kept = [h for h in rounds if h["kept"]]
    assert len(r["greedy"]["kept"]) == len(kept)
    assert len(r["trials"]) == (4 if kept else 3)  # round 1 tries the one candidate left on top of the kept one
    assert r["best"]["val_bpb"] == min(t["val_bpb"] for t in r["trials"] if t["val_bpb"] is not None)


def test_workers_starting_at_once_all_open_the_same_new_study(tmp_path):
    """They race to create the SQLite schema and the study; every one must end up in the one study."""
    code = ("import sys, warnings; warnings.simplefilter('ignore'); import optuna; "
            "optuna.logging.set_verbosity(optuna.logging.WARNING); "
            "from pgolf.sweep.storage import open_storage; "
            "s = optuna.create_study(study_name='x', storage=open_storage(sys.argv[1]), load_if_exists=True); "
            "s.enqueue_trial({}); print(len(s.get_trials()) >= 1)")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", code, url], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-500:] for _, e in outs]
    import optuna

    assert len(optuna.get_all_study_names(url)) == 1
    assert len(optuna.load_study(study_name="x", storage=url).get_trials()) == 4


def test_the_best_preset_extends_a_base_given_relative_to_the_sweep_file(tmp_path, monkeypatch):
    import tomllib

    from pgolf.sweep.report import best_preset_toml

    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "base.toml").write_text('extends = "cpu-mini"\n[train]\nmatrix_lr = 0.03\n')
    (tmp_path / "sweeps").mkdir()
    sweep_file = tmp_path / "sweeps" / "s.toml"
    sweep_file.write_text('preset = "../presets/base.toml"\nsteps = 5\nmode = "greedy"\n'
                          '[greedy]\ncandidates = [["train.scalar_lr=0.02"]]\n')
    monkeypatch.chdir(tmp_path)  # from here "../presets/base.toml" would name the wrong file
    sweep = load_sweep(sweep_file)
    best = tomllib.loads(best_preset_toml(sweep, ["train.scalar_lr=0.02"], 1.0, 2))
    assert best["extends"] == [str((tmp_path / "presets" / "base.toml").resolve())]
    assert best["train"] == {"scalar_lr": 0.02}
