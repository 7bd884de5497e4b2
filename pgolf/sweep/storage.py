"""Where a sweep's study lives, so that workers on one machine or many share it.

- default: one SQLite file beside the sweep (`OUT/study.db`): nothing to start;
- `--storage postgresql://user:pw@host/db` (any SQLAlchemy URL Optuna accepts): workers on many
  machines share one database;
- `--storage journal:/shared/fs/study.log`: Optuna's journal file on a shared filesystem.

SQL storages run Optuna's heartbeat: a worker that dies mid-trial stops beating, and the next
worker that starts a trial marks it failed and re-queues its parameters (`RetryHeartbeatStaleTrialCallback`),
so no trial is lost. Journal storage has no heartbeat in Optuna: a killed worker's trial stays
RUNNING there until `pgolf sweep --requeue-stale SECONDS` re-queues trials older than that.
"""

from __future__ import annotations

import time
from pathlib import Path

from pgolf.errors import ConfigError

STUDY_FILE = "study.db"
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120


def storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(Path(out) / STUDY_FILE).resolve()}"


def open_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS):
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: in use since v2.8
                return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                                  engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"storage {url!r}: {exc}") from None
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            # Workers starting at once race to create the schema (one wins, the others see its
            # rows half-written): wait and open what the winner made.
            if attempt == 5:
                raise ConfigError(f"storage {url!r}: {str(exc).splitlines()[0]}") from None
            time.sleep(0.5 * (attempt + 1))


def requeue_stale(study, older_than_seconds: float) -> list[int]:
    """Mark RUNNING trials started more than `older_than_seconds` ago failed and re-queue their
    parameters (for storages without a heartbeat). Returns the trial numbers re-queued."""
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    now = time.time()
    done = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.datetime_start is not None and now - t.datetime_start.timestamp() > older_than_seconds:
            # The same two steps Optuna's heartbeat takes for a stale trial.
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                RetryHeartbeatStaleTrialCallback(max_retry=3)(study, t)
            done.append(t.number)
    return done
