"""Whether the sweep goes on after each trial, as an Optuna callback: :class:`SweepStops` decides it (the target,
the space's stop rules (:class:`EndRules`), the time budget, repeated identical failures, this process's share of
trials). Dead workers' trials are recovered
after each trial by :class:`DeadWorkerRecovery`. Both read the study's trials as the other after-trial callbacks
read them, once per trial (:class:`sweeps.store.trials.ReadPerTrial`)."""

from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from sweeps import signals
from sweeps.search.retries import INTERRUPTED_TRIAL, fail_dead_trials, worker_died
from sweeps.space.schema import StopRules
from sweeps.space.space import Space
from sweeps.space.target import meets_target, target_text
from sweeps.store.keys import EPOCH_TIME, FAIL_REASON, MLFLOW_RUN_ID
from sweeps.store.sweep_end import EndRecord, ended_by, record_end, rules_from
from sweeps.store.tracking import Tracker
from sweeps.store.trials import (
    FINISHED_STATES,
    ReadPerTrial,
    StudyTrials,
    can_win,
    cut_by_the_budget,
    is_search_trial,
)

MAX_FAILURES_IN_A_ROW = 3
NOT_THE_TRIALS_DOING = (INTERRUPTED_TRIAL, "worker died", "surplus", "its cluster task")  # fail reasons' beginnings
AfterTrial = Callable[[optuna.Study, FrozenTrial], None]  # what Optuna calls after each trial


class SweepStops:
    """Stops the study when enough trials are finished or in flight and no retry is owed (Optuna's MaxTrialsCallback
    counts finished ones only, so N workers would overshoot by N-1), when the budget leaves no time for an epoch, after
    MAX_FAILURES_IN_A_ROW identical failures (``stopped_for``), when one of the space's stop rules ends the sweep
    (``ends``: here, or in another worker), or when this process has run ``share`` trials (``recycle``: a fresh
    process goes on, so memory stays flat). With ``stops`` False (Keras Tuner decides when to stop) it only watches
    failures. ``reads``: the study's trials as read once after each trial, shared with the other after-trial
    callbacks."""

    def __init__(self, console: Console, target: int, stops: bool = True, deadline: float | None = None,
                 share: int | None = None, reads: ReadPerTrial | None = None, ends: EndRules | None = None):
        self.console, self.target, self.stops = console, target, stops
        self.reads, self.ends = reads or ReadPerTrial(), ends
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
        if now.target_reached(self.target) or self._ended(study, trial, now):
            study.stop()
        elif self.deadline is not None and (cut_by_the_budget(trial) or self._no_time_left(now, self.deadline)):
            study.stop()  # a trial the budget cut found too little time left for any other
        elif self.share is not None and self.ran >= self.share and not self.stopped_for:
            self.recycle = True
            study.stop()

    def _ended(self, study: optuna.Study, trial: FrozenTrial, now: StudyTrials) -> bool:
        """Whether a stop rule of the space ended the sweep, after this trial or in another worker."""
        record = None if self.ends is None else self.ends.check(study, trial, now, self.target)
        if record is not None and record.trial == trial.number:
            self.console.print(f"sweep.stop.{record.rule}: {record.why}; the sweep ends", highlight=False)
        return record is not None

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


@dataclass(frozen=True)
class EndRules:
    """The space's ``sweep.stop`` rules: the sweep ends when a finished search trial meets the target bar
    (``on_target``, on its mean test scores, as the report judges PASS), or when the best has not improved by
    ``plateau.min_delta`` over the last ``plateau.trials`` finished search trials. Trials that may not win
    (infeasible, excluded) never count as the best; a rule that fired is kept in the study, so every worker stops."""

    stop: StopRules
    bar: dict
    scores: Callable[[FrozenTrial], Mapping[str, float]]  # a finished trial's mean test scores

    @classmethod
    def of(cls, space: Space, tracker: Tracker) -> EndRules | None:
        """The rules of ``space`` (None when it has none), reading trials' test scores from their MLflow runs."""
        stop = space.spec.sweep.stop
        if not stop.on_target and stop.plateau is None:
            return None

        def scores(trial: FrozenTrial) -> Mapping[str, float]:
            run_id = trial.user_attrs.get(MLFLOW_RUN_ID)
            return tracker.client.get_run(run_id).data.metrics if run_id else {}

        return cls(stop, dict(space.spec.target), scores)

    def check(self, study: optuna.Study, trial: FrozenTrial, now: StudyTrials, target: int) -> EndRecord | None:
        """The rule that ended the sweep: one that already had (another worker's), or one that ``trial`` makes fire
        (then kept in the study); None while the sweep goes on."""
        attrs = study.user_attrs  # one read: another worker's end, and where the rules count from
        record = ended_by(study, attrs)
        if record is None:
            record = self._on_target(trial, now, target) or self._plateau(trial, now, rules_from(study, attrs), target)
            if record is not None:
                record_end(study, record)
        return record

    def _on_target(self, trial: FrozenTrial, now: StudyTrials, target: int) -> EndRecord | None:
        if not self.stop.on_target or trial.state != TrialState.COMPLETE or not is_search_trial(trial):
            return None
        if not can_win(trial, now.excluded) or not meets_target(self.scores(trial), self.bar):
            return None
        return EndRecord("on_target", trial.number, now.finished, target,
                         f"trial {trial.number} met the target bar ({target_text(self.bar)})")

    def _plateau(self, trial: FrozenTrial, now: StudyTrials, start: int, target: int) -> EndRecord | None:
        """``start``: finished search trials before the window may begin (a sweep that went on past an end)."""
        rule = self.stop.plateau
        if rule is None:
            return None
        done = sorted((t for t in now.in_states(*FINISHED_STATES) if is_search_trial(t) and not cut_by_the_budget(t)),
                      key=lambda t: t.datetime_complete or datetime.datetime.min)
        sign = 1 if now.maximize else -1
        best, gained = None, -1  # the best as it last improved by min_delta, and when (its place in ``done``)
        for place, t in enumerate(done):
            if t.state == TrialState.COMPLETE and can_win(t, now.excluded):
                value = sign * t.values[0]
                if best is None or (value > sign * best.values[0] and value - sign * best.values[0] >= rule.min_delta):
                    best, gained = t, place
        since = len(done) - 1 - max(gained, start - 1)  # finished trials since the last gain (or the window's start)
        if since < rule.trials:
            return None
        held = (f"the best ({best.values[0]:.4g}, trial {best.number}) has not improved by {rule.min_delta:g}"
                if best is not None else "no trial has completed")
        return EndRecord("plateau", trial.number, now.finished, target, f"{held} over the last {since} finished trials")


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
