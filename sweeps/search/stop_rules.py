"""Whether the sweep goes on after each trial, as an Optuna callback: :class:`SweepStops` decides it (the target,
the time budget, repeated identical failures, this process's share of trials). Dead workers' trials are recovered
after each trial by :class:`DeadWorkerRecovery`. Both read the study's trials as the other after-trial callbacks
read them, once per trial (:class:`sweeps.store.trials.ReadPerTrial`)."""

from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Callable, Sequence

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from sweeps import signals
from sweeps.search.retries import INTERRUPTED_TRIAL, fail_dead_trials, worker_died
from sweeps.store.keys import EPOCH_TIME, FAIL_REASON
from sweeps.store.trials import FINISHED_STATES, ReadPerTrial, StudyTrials, cut_by_the_budget, is_search_trial

MAX_FAILURES_IN_A_ROW = 3
NOT_THE_TRIALS_DOING = (INTERRUPTED_TRIAL, "worker died", "surplus", "its cluster task")  # fail reasons' beginnings
AfterTrial = Callable[[optuna.Study, FrozenTrial], None]  # what Optuna calls after each trial


class SweepStops:
    """Stops the study when enough trials are finished or in flight and no retry is owed (Optuna's MaxTrialsCallback
    counts finished ones only, so N workers would overshoot by N-1), when the budget leaves no time for an epoch, after
    MAX_FAILURES_IN_A_ROW identical failures (``stopped_for``), or when this process has run ``share`` trials
    (``recycle``: a fresh process goes on, so memory stays flat). With ``stops`` False (Keras Tuner decides when
    to stop) it only watches failures. ``reads``: the study's trials as read once after each trial, shared with the
    other after-trial callbacks."""

    def __init__(self, console: Console, target: int, stops: bool = True, deadline: float | None = None,
                 share: int | None = None, reads: ReadPerTrial | None = None):
        self.console, self.target, self.stops = console, target, stops
        self.reads = reads or ReadPerTrial()
        self.deadline = deadline  # time.monotonic() when the budget ends
        self.share, self.ran, self.recycle = share, 0, False
        self.stopped_for: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        signals.check()  # a stop asked for while the trial finished
        now = self.reads.of(study, trial)
        self._watch_failures(study, trial, now)
        if not self.stops:
            return
        self.ran += 1
        if now.target_reached(self.target):
            study.stop()
        elif self.deadline is not None and (cut_by_the_budget(trial) or self._no_time_left(now, self.deadline)):
            study.stop()  # a trial the budget cut found too little time left for any other
        elif self.share is not None and self.ran >= self.share and not self.stopped_for:
            self.recycle = True
            study.stop()

    def _no_time_left(self, now: StudyTrials, deadline: float) -> bool:
        """No trial is started that cannot train one epoch (the median so far) before the budget ends."""
        epoch_s = [t.user_attrs[EPOCH_TIME] for t in now.in_states(*FINISHED_STATES) if EPOCH_TIME in t.user_attrs]
        left = deadline - time.monotonic()
        if not epoch_s or left >= statistics.median(epoch_s):
            return False
        self.console.print(f"budget: {max(left, 0):.0f} s left, less than one epoch ({statistics.median(epoch_s):.0f} s): "
                           "no new trial", highlight=False)
        return True

    def _watch_failures(self, study: optuna.Study, trial: FrozenTrial, now: StudyTrials) -> None:
        if trial.state != TrialState.FAIL:
            return
        self.stopped_for = failure_streak(study, now.trials)
        if self.stopped_for and self.stops:
            study.stop()


def failure_streak(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> str | None:
    """The reason the study's last MAX_FAILURES_IN_A_ROW ended search trials all failed with, read from the study so
    that every worker process (however few trials each runs) sees the same streak; None when they did not. Failures
    that are not the trial's doing (a stop, a dead worker, a surplus trial) neither count nor break it. ``trials``:
    the study's trials as just read (else read here)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
             and is_search_trial(t) and not str(t.user_attrs.get(FAIL_REASON, "")).startswith(NOT_THE_TRIALS_DOING)]
    last = sorted(ended, key=lambda t: t.datetime_complete or datetime.datetime.min)[-MAX_FAILURES_IN_A_ROW:]
    reasons = {t.user_attrs.get(FAIL_REASON, "") if t.state == TrialState.FAIL else None for t in last}
    if len(last) < MAX_FAILURES_IN_A_ROW or len(reasons) != 1 or None in reasons:
        return None
    return reasons.pop()


class DeadWorkerRecovery:
    """Optuna callback: after each trial, fail and retry the trials of workers that died meanwhile. It looks for them
    in the read of the moment (``reads``, shared with the other after-trial callbacks); when it finds one, it fails
    them from a fresh read and has the callbacks after it (the stop rules) read the changed study again."""

    def __init__(self, storage: BaseStorage, retry: bool = True, reads: ReadPerTrial | None = None):
        self.storage, self.retry = storage, retry
        self.reads = reads or ReadPerTrial()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if any(worker_died(t) for t in self.reads.of(study, trial).in_states(TrialState.RUNNING)):
            fail_dead_trials(self.storage, study, self.retry)
            self.reads.forget()
