"""Retries: fail the trials of dead workers and stopped ones and queue each again, close their MLflow runs.

RDB storages find silent workers by their heartbeats (:func:`stale_trials` is what ``open_sweep`` gives its
storage). The journal file has no heartbeat, so each trial records its worker (:mod:`sweeps.processes`) and any worker
on the same machine fails the trials of a process that no longer exists, then queues a retry the way Optuna's
stale-trial callback does (same params, a new trial number), without the dead attempt's identity.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from sweeps.processes import is_alive, worker_id
from sweeps.store.keys import (
    EPOCH_TIME,
    FAIL_REASON,
    FINISHED,
    INTERRUPTED,
    KIND,
    NODE,
    REPEAT_RUN,
    RUN_WORKER,
    STATE,
    STOP_REASONS,
    TASK,
    TRIAL,
    TRIAL_RUN,
    VALUE_STD,
    WORKER,
)
from sweeps.store.storage import StaleTrials
from sweeps.store.tracking import Tracker
from sweeps.store.trials import retry_history

INTERRUPTED_TRIAL = "interrupted"  # a trial's fail reason when a stop ended it (it is queued to go on)
MAX_CRASH_RETRIES = 3  # a trial whose worker died (or went silent) is retried this often; a stopped one always
CRASH_RETRIES = "sweeps:crash_retries"  # a retry's system attribute: how many of its attempts crashed
# The failed attempt's own attributes, which its retry must not carry: above all the dead process that ran it (a
# retry showing it would look dead to every worker's recovery until its new worker records itself).
ATTEMPT_ATTRS = (WORKER, NODE, TASK, FAIL_REASON, STOP_REASONS, VALUE_STD, EPOCH_TIME)


def grace_s() -> int:
    """How long a trial's worker may be silent before it counts as dead and the trial is retried ($SWEEPS_GRACE_S,
    read at each use: a worker forked from a template imported this module under another environment)."""
    return int(os.environ.get("SWEEPS_GRACE_S", "60"))


def _trial_id(storage: BaseStorage, study: optuna.Study, number: int) -> int:
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


def still_runs(trial: optuna.Trial) -> bool:
    """Whether this process still owns ``trial``: it is RUNNING and recorded as this worker's (another process may
    have failed it meanwhile, taking this one for dead, and queued its retry)."""
    frozen = trial.storage.get_trial(_trial_id(trial.storage, trial.study, trial.number))
    return frozen.state == TrialState.RUNNING and frozen.user_attrs.get(WORKER) == worker_id()


def _fail(storage: BaseStorage, study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial of another process; False when another worker got there first. (Optuna's own
    ``fail_stale_trials`` does the same through these public storage methods.)"""
    trial_id = _trial_id(storage, study, trial.number)
    try:
        storage.set_trial_user_attr(trial_id, FAIL_REASON, reason)
        return storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def _unrecorded(trial: FrozenTrial) -> bool:
    """A trial RUNNING for longer than :func:`grace_s` whose worker was never recorded: its process lost the store (or
    died) in the instant after creating it — no heartbeat will ever fail it, as it never beat."""
    started = trial.datetime_start
    return WORKER not in trial.user_attrs and started is not None and \
        (datetime.datetime.now() - started).total_seconds() > grace_s()


def _fail_running(storage: BaseStorage, study: optuna.Study, which: Callable[[FrozenTrial], bool], reason: str,
                  retry: bool) -> list[int]:
    """Fail the RUNNING trials ``which`` picks (with ``reason``) and, when ``retry``, queue one retry of each that
    the retry cap allows; the numbers failed (when ``retry``: those queued again). A trial another worker failed
    first is left to it."""
    done = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not (which(trial) and _fail(storage, study, trial, reason)):
            continue
        if not retry or queue_retry(study, storage.get_trial(_trial_id(storage, study, trial.number))):
            done.append(trial.number)
    return done


def queue_retry(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Queue the failed ``trial`` to go on as a new trial: its params, intermediate values, MLflow run and lineage
    (``failed_trial``, ``retry_history``, as Optuna's ``RetryHeartbeatStaleTrialCallback`` records them), none of
    the failed attempt's own attributes. A stop is retried as often as it happens; a crash (a dead or silent worker,
    a lost node) up to MAX_CRASH_RETRIES times. Whether it was queued."""
    stopped = trial.user_attrs.get(FAIL_REASON) == INTERRUPTED_TRIAL
    crashes = trial.system_attrs.get(CRASH_RETRIES, 0) + (0 if stopped else 1)
    if crashes > MAX_CRASH_RETRIES:
        return False
    lineage = {"failed_trial": trial.system_attrs.get("failed_trial", trial.number),
               "retry_history": [*trial.system_attrs.get("retry_history", []), trial.number], CRASH_RETRIES: crashes}
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k not in ATTEMPT_ATTRS},
        system_attrs={**trial.system_attrs, **lineage}, intermediate_values=trial.intermediate_values))
    return True


def retry_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """An RDB storage's heartbeat callback: a trial whose worker went silent is a crash, retried as one."""
    queue_retry(study, trial)


def stale_trials() -> StaleTrials:
    """What a storage that runs trials does with a silent worker's trial: fail it after :func:`grace_s`, then retry
    it."""
    return StaleTrials(grace_s=grace_s(), callback=retry_stale)


def worker_died(trial: FrozenTrial) -> bool:
    """Whether the RUNNING ``trial``'s worker is a dead process of this machine, or was never recorded (for longer
    than its grace_s())."""
    return is_alive(trial.user_attrs.get(WORKER, "")) is False or _unrecorded(trial)


def fail_dead_trials(storage: BaseStorage, study: optuna.Study, retry: bool = True) -> list[int]:
    """Fail the RUNNING trials of dead workers on this machine (and those whose worker was never recorded) and, when
    ``retry`` (not in a Keras Tuner study: its oracle runs its unfinished trial again itself), queue a retry of
    each; their numbers (those queued again, when ``retry``)."""
    return _fail_running(storage, study, worker_died, "worker died", retry=retry)


def queue_interrupted(storage: BaseStorage, study: optuna.Study, numbers: list[int]) -> list[int]:
    """Queue again the trials a stop interrupted in this process (Optuna has failed them), so a later start goes
    on with each from its last epoch; their numbers."""
    queued = []
    retried = {n for t in study.get_trials(deepcopy=False) for n in retry_history(t)}
    for number in numbers:
        trial = storage.get_trial(_trial_id(storage, study, number))
        if trial.state == TrialState.FAIL and number not in retried and queue_retry(study, trial):
            queued.append(number)  # (not already retried as a dead worker's)
    return queued


def queue_left_interrupted(storage: BaseStorage, study: optuna.Study) -> list[int]:
    """Queue again the trials a stop interrupted whose worker was killed before it queued them itself (a second
    signal while it cleaned up); their numbers. Called by one process per sweep, before its workers start."""
    left = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.user_attrs.get(FAIL_REASON) == INTERRUPTED_TRIAL]
    return queue_interrupted(storage, study, left)


def fail_lost_trials(storage: BaseStorage, study: optuna.Study, task: str) -> list[int]:
    """Fail the RUNNING trials of cluster task ``task``, lost with its node or its process, and queue one retry of
    each: losing a machine is not the trial's doing; their numbers."""
    return _fail_running(storage, study, lambda t: t.user_attrs.get(TASK) == task,
                         f"its cluster task {task} was lost", retry=True)


def fail_crashed_trials(storage: BaseStorage, study: optuna.Study, worker: str, reason: str) -> list[int]:
    """Fail the RUNNING trials of ``worker``, a process that crashed under a supervisor that lives on: the
    trial itself is the likely cause (out of memory, a segfault), so it is not retried; their numbers."""
    return _fail_running(storage, study, lambda t: t.user_attrs.get(WORKER) == worker, reason, retry=False)


def close_orphan_runs(study: optuna.Study, tracker: Tracker) -> int:
    """Mark KILLED the MLflow runs still RUNNING whose trial has ended or whose sweep process is gone, and the
    FINISHED trial runs of trials that were failed (a worker killed after closing the run, before telling Optuna)."""
    # The trials' states first, then the runs: a run seen RUNNING whose trial had ended at the earlier read was
    # truly left behind. Read the other way round, a trial ending between the two reads (another worker's,
    # finishing) would look orphaned, and its just-finished run would be overwritten KILLED.
    states = {str(t.number): t.state for t in study.get_trials(deepcopy=False)}
    runs = tracker.runs()
    if runs.empty:
        return 0
    closed = 0
    told_late = runs[(runs["status"] == FINISHED) & (runs.get(f"tags.{KIND}") == TRIAL_RUN)]
    for _, run in told_late.iterrows():
        if states.get(run.get(f"tags.{TRIAL}")) == TrialState.FAIL:
            tracker.set_tags(run["run_id"], {STATE: "FAIL"})
            tracker.end_run(run["run_id"], INTERRUPTED)
            closed += 1
    for _, run in runs[runs["status"] == "RUNNING"].iterrows():
        kind = run.get(f"tags.{KIND}")
        if kind in (TRIAL_RUN, REPEAT_RUN):  # a trial begun after the states were read is not an orphan
            orphan = states.get(run.get(f"tags.{TRIAL}"), TrialState.RUNNING) not in (TrialState.RUNNING, TrialState.WAITING)
        else:
            orphan = is_alive(str(run.get(f"tags.{RUN_WORKER}") or "")) is False
        if orphan:
            if kind in (TRIAL_RUN, REPEAT_RUN):
                tracker.set_tags(run["run_id"], {STATE: "FAIL"})
            tracker.end_run(run["run_id"], INTERRUPTED)
            closed += 1
    return closed
