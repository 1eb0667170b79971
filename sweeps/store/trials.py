"""Reading a study's trials: which count as finished, the best one, how many are finished or running."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.store.keys import CONFIRMS, STOP_REASONS, WARM_FROM
from sweeps.store.recovery import retry_history

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts toward a sweep's TRIALS


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The search's best completed trial by the first objective (confirmations and warm-start copies left out; on a
    Pareto front, the member best by that objective)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_search_trial(t)]
    if not done:
        return None
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: t.values[0])


def is_search_trial(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is one of this sweep's search trials, counted toward TRIALS. A confirmation of the winner on
    new seeds is not (a continued study with ``--trials 30`` samples 30, however many winners were confirmed on the
    way), nor a trial copied from an earlier study by ``sweep.warm_start``."""
    return CONFIRMS not in trial.user_attrs and WARM_FROM not in trial.user_attrs


def own_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials less those a warm start copied in (they have their runs in their own study)."""
    return [t for t in study.get_trials(deepcopy=False) if WARM_FROM not in t.user_attrs]


def is_owed(trial: FrozenTrial) -> bool:
    """Whether ``trial`` must run even with TRIALS reached: a retry of a lost or interrupted trial (which stopped
    counting as running when it failed, so a fresh trial may have filled its place) or a queued confirmation."""
    return bool(retry_history(trial)) or CONFIRMS in trial.user_attrs


def cut_by_the_budget(trial: FrozenTrial) -> bool:
    """Whether the sweep's time budget stopped ``trial`` mid-schedule (it is pruned, and no result)."""
    return "time_budget" in trial.user_attrs.get(STOP_REASONS, ())


def count_finished(study: optuna.Study) -> int:
    """The search's finished trials (confirmations, warm-start copies and trials the budget cut left out)."""
    return sum(is_search_trial(t) and not cut_by_the_budget(t)
               for t in study.get_trials(deepcopy=False, states=FINISHED_STATES))


def count_running(study: optuna.Study) -> int:
    """The search's trials in flight (confirmations left out)."""
    return sum(is_search_trial(t) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def target_reached(study: optuna.Study, target: int) -> bool:
    """Whether ``target`` search trials are finished or in flight and no owed trial (a retry, a confirmation) waits."""
    if any(is_owed(t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))):
        return False
    return count_finished(study) + count_running(study) >= target
