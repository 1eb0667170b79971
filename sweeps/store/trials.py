"""Reading a study's trials: which count as finished, the best one, how many are finished or running; one read of
them shared by every reader of one moment (:class:`StudyTrials`, :class:`ReadPerTrial`)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from sweeps.store.keys import CONFIRMS, EXCLUDED, QUEUED_BY_HAND, REJECTED, STOP_REASONS, WARM_FROM

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts toward a sweep's TRIALS


class StudyTrials:
    """One read of a study's trials (``get_trials(deepcopy=False)``, in number order) and what a sweep asks of it:
    each question a pass over the list in memory, none a read of the storage; the counts and the best trial worked
    out once, however many readers ask."""

    def __init__(self, study: optuna.Study, trials: Sequence[FrozenTrial] | None = None,
                 maximize: bool | None = None):
        self.study = study
        self.trials = study.get_trials(deepcopy=False) if trials is None else trials
        self._maximize = maximize

    @property
    def maximize(self) -> bool:
        """Whether the first objective is maximised (read from the study once)."""
        if self._maximize is None:
            self._maximize = self.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        return self._maximize

    @cached_property
    def excluded(self) -> dict[str, str]:
        """See :func:`excluded`."""
        return excluded(self.study)

    def in_states(self, *states: TrialState) -> list[FrozenTrial]:
        """The trials in any of ``states``, in number order."""
        return [t for t in self.trials if t.state in states]

    @cached_property
    def best(self) -> FrozenTrial | None:
        """See :func:`best_trial`."""
        done = [t for t in self.in_states(TrialState.COMPLETE) if is_search_trial(t) and can_win(t, self.excluded)]
        if not done:
            return None
        return (max if self.maximize else min)(done, key=lambda t: t.values[0])

    @cached_property
    def finished(self) -> int:
        """See :func:`count_finished`."""
        return sum(is_search_trial(t) and not cut_by_the_budget(t) for t in self.in_states(*FINISHED_STATES))

    @cached_property
    def running(self) -> int:
        """See :func:`count_running`."""
        return sum(is_search_trial(t) for t in self.in_states(TrialState.RUNNING))

    def target_reached(self, target: int) -> bool:
        """See :func:`target_reached`."""
        if any(is_owed(t) for t in self.in_states(TrialState.WAITING)):
            return False
        return self.finished + self.running >= target


class ReadPerTrial:
    """The study's trials read once after each finished trial, for every after-trial callback of that moment (the
    trial line, the live line, recovery, the stop rules): the first to ask reads, the others share it. A callback
    that changes the study (recovery failing a dead worker's trial) calls :meth:`forget`, so those after it read
    afresh. Keyed by the trial's number, so a read never outlives its trial."""

    def __init__(self) -> None:
        self.number: int | None = None
        self.read: StudyTrials | None = None
        self.maximize: bool | None = None  # whether the first objective is maximised: read once per process

    def of(self, study: optuna.Study, trial: FrozenTrial) -> StudyTrials:
        """The read of the moment ``trial`` finished (made now when none is held for it)."""
        if self.maximize is None:
            self.maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        if self.read is None or self.number != trial.number:
            self.read, self.number = StudyTrials(study, maximize=self.maximize), trial.number
        return self.read

    def forget(self) -> None:
        """The study changed: the next reader reads it again."""
        self.read = None


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The search's best completed trial by the first objective (confirmations, warm-start copies, infeasible and
    excluded trials left out; on a Pareto front, the member best by that objective)."""
    return StudyTrials(study, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))).best


def is_search_trial(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is one of this sweep's search trials, counted toward TRIALS. A confirmation of the winner on
    new seeds is not (a continued study with ``--trials 30`` samples 30, however many winners were confirmed on the
    way), nor a trial copied from an earlier study by ``sweep.warm_start``, nor one whose params broke a constraint
    (never trained: the sampler samples another in its place)."""
    return not any(key in trial.user_attrs for key in (CONFIRMS, WARM_FROM, REJECTED))


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether ``trial`` met the space's constraints (Optuna's record, in either of its formats: each value <= 0; a
    trial without is)."""
    return all(value <= 0 for value in trial.constraints.values())


def excluded(study: optuna.Study) -> dict[str, str]:
    """The trials kept out of best by hand, by number (as text), with the reason given. A study's attribute, as
    Optuna lets no finished trial change."""
    return dict(study.user_attrs.get(EXCLUDED, {}))


def can_win(trial: FrozenTrial, excluded: Mapping[str, str]) -> bool:
    """Whether ``trial`` may be the best: feasible, and not ``excluded`` by hand (its record is kept either way)."""
    return is_feasible(trial) and str(trial.number) not in excluded


def own_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials less those a warm start copied in (they have their runs in their own study)."""
    return [t for t in study.get_trials(deepcopy=False) if WARM_FROM not in t.user_attrs]


def is_owed(trial: FrozenTrial) -> bool:
    """Whether ``trial`` must run even with TRIALS reached: a retry of a lost or interrupted trial (which stopped
    counting as running when it failed, so a fresh trial may have filled its place), a queued confirmation, or a
    configuration queued by hand (``sweep enqueue``: the user asked for it)."""
    return bool(retry_history(trial)) or CONFIRMS in trial.user_attrs or QUEUED_BY_HAND in trial.user_attrs


def cut_by_the_budget(trial: FrozenTrial) -> bool:
    """Whether the sweep's time budget stopped ``trial`` mid-schedule (it is pruned, and no result)."""
    return "time_budget" in trial.user_attrs.get(STOP_REASONS, ())


def count_finished(study: optuna.Study) -> int:
    """The search's finished trials (confirmations, warm-start copies and trials the budget cut left out)."""
    return StudyTrials(study, study.get_trials(deepcopy=False, states=FINISHED_STATES)).finished


def count_running(study: optuna.Study) -> int:
    """The search's trials in flight (confirmations left out)."""
    return StudyTrials(study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))).running


def target_reached(study: optuna.Study, target: int) -> bool:
    """Whether ``target`` search trials are finished or in flight and no owed trial (a retry, a confirmation) waits
    (one read of the study)."""
    return StudyTrials(study).target_reached(target)


def retry_history(trial: FrozenTrial) -> list[int]:
    """The numbers of the earlier trials ``trial`` retries (Optuna's record; empty for a new trial)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retry_history(trial)
