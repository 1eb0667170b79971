"""Reading a study's trials: which count as finished, the best one, how many are finished or running."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.store.recovery import retry_history

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts toward a sweep's TRIALS


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best completed trial by the first objective (on a Pareto front: its best member by that objective)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    if len(study.directions) == 1:
        return study.best_trial
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(study.best_trials, key=lambda t: t.values[0])


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def count_running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def target_reached(study: optuna.Study, target: int) -> bool:
    """Whether ``target`` trials are finished or in flight and no retry of a lost or interrupted trial is queued: the
    lost trial stopped counting as running when it failed, so its retry is owed even if a fresh trial filled its place
    meanwhile."""
    if any(retry_history(t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))):
        return False
    return count_finished(study) + count_running(study) >= target
