"""Greedy forward selection, the way the 1.0611 record (#1855) chose its final settings: round 0
scores the base preset and each candidate alone; the best candidate is kept if it beats the base;
each later round tries every remaining candidate on top of those kept, except those that set a key
a kept candidate already set (an alternative value of a settled key: round 0 compared them); the
search ends when no candidate improves on the round before, or none is left.

The state lives entirely in the study (each trial carries `greedy_round` and `greedy_candidate`,
-1 = the round's base), so any number of workers can share a search and a restarted worker
continues it. Two workers that pick the same task in the same instant both create a trial; the one
with the lower number counts and the other is dropped as a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE = -1


@dataclass
class GreedyState:
    kept: list[int]  # candidates kept so far, in order
    round: int
    todo: list[int]  # candidates (or BASE) of this round not yet started
    running: int  # trials of this round still running
    done: bool
    history: list[dict]  # one entry per finished round: {round, best, value, baseline, kept}


def _value_of(trials) -> float | None:
    from optuna.trial import TrialState

    values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return min(values) if values else None


def candidate_keys(candidates: list[list[str]]) -> list[set[str]]:
    """The preset keys each candidate's overrides set."""
    return [{o.split("=", 1)[0].strip() for o in cand} for cand in candidates]


def greedy_state(trials, n_candidates: int, keys: list[set[str]] | None = None) -> GreedyState:
    """Where the search stands, from the study's trials (FrozenTrial-like: user_attrs, state, value).
    `keys` (candidate_keys) lets a round skip candidates whose keys a kept candidate already set."""
    from optuna.trial import TrialState

    by_round: dict[int, dict[int, list]] = {}
    for t in trials:
        if "greedy_round" not in t.user_attrs or t.user_attrs.get("duplicate_of") is not None:
            continue
        # A failed trial counts as tried: a dead worker's is re-queued as a WAITING copy (which keeps
        # the round open); one that failed on its own (e.g. diverged) simply has no value.
        by_round.setdefault(t.user_attrs["greedy_round"], {}).setdefault(t.user_attrs["greedy_candidate"], []).append(t)
    kept: list[int] = []
    baseline: float | None = None
    history: list[dict] = []
    r = 0
    while True:
        settled = set().union(*(keys[c] for c in kept)) if keys else set()
        remaining = [c for c in range(n_candidates) if c not in kept and not (keys and keys[c] & settled)]
        wanted = ([BASE] if r == 0 else []) + remaining
        if not remaining and r > 0:
            return GreedyState(kept, r, [], 0, True, history)
        started = by_round.get(r, {})
        todo = [c for c in wanted if c not in started]
        running = sum(1 for c in wanted for t in started.get(c, [])
                      if t.state in (TrialState.RUNNING, TrialState.WAITING))
        if todo or running:
            return GreedyState(kept, r, todo, running, False, history)
        values = {c: _value_of(started[c]) for c in wanted}
        values = {c: v for c, v in values.items() if v is not None}
        if r == 0:
            baseline = values.pop(BASE, None)
        if not values:
            return GreedyState(kept, r, [], 0, True, history)
        best = min(values, key=values.get)
        improved = baseline is None or values[best] < baseline
        history.append({"round": r, "best": best, "value": values[best], "baseline": baseline, "kept": improved})
        if not improved:
            return GreedyState(kept, r, [], 0, True, history)
        kept.append(best)
        baseline = values[best]
        r += 1


def overrides_for(kept: list[int], candidate: int, candidates: list[list[str]]) -> list[str]:
    out = [o for c in kept for o in candidates[c]]
    return out + (candidates[candidate] if candidate != BASE else [])
