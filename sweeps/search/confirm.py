"""Confirmation seeds (``sweep.confirm``): after the search, the winner's params trained again on new seeds, as a
trial of their own that the report counts among the winner's repeats. One seed picks a winner that is partly luck
(seed-to-seed spread on Fashion-MNIST is several tenths of a point); the confirmed mean says how good it is.

TensorFlow-free: the command starting a sweep queues the confirmation before any worker starts.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.space.space import Space
from sweeps.store.keys import BASELINE_FIXED, CONFIRMS, EPOCH_BUDGET, SEEDS
from sweeps.store.trials import best_trial


def confirmation_seeds(space: Space, count: int) -> list[int]:
    """Seeds after the ones every trial of the search trained with."""
    first = space.spec.sweep.seed + space.spec.sweep.repeats
    return list(range(first, first + count))


def queue_confirmation(study: optuna.Study, space: Space, count: int) -> FrozenTrial | None:
    """Queue the winner's confirmation on ``count`` new seeds unless it has one (done, running or queued); the
    winner whose confirmation now waits, or None when none waits."""
    winner = best_trial(study)
    if winner is None or count < 1:
        return None
    confirming = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(CONFIRMS) == winner.number]
    if not any(t.state != TrialState.FAIL for t in confirming):
        kept = {key: winner.user_attrs[key] for key in (EPOCH_BUDGET, BASELINE_FIXED) if key in winner.user_attrs}
        study.enqueue_trial(winner.params, user_attrs={CONFIRMS: winner.number, SEEDS: confirmation_seeds(space, count),
                                                       **kept})
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return winner if any(t.user_attrs.get(CONFIRMS) == winner.number for t in waiting) else None
