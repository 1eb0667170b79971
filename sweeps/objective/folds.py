"""A kfold trial's folds: which fold each repeat holds out, and pruning across folds.

Optuna keeps one series of intermediate values per trial. A kfold trial reports one value per fold (step = the
fold's index) and none per epoch: a fold is the unit its pruner compares. Wilcoxon's signed-rank test pairs each
fold's value with the best trial's on the same fold, so it is told the fold's own value; the other pruners
(median, successive halving…) compare a value that converges, so they are told the mean of the folds so far."""

from __future__ import annotations

import optuna

from experiments.data.folds import fold_part
from experiments.data.loading import Dataset
from experiments.outcome import RepeatResult
from sweeps.space.space import Space


def folds_of(space: Space) -> int | None:
    """The space's fold count; None when it does not cross-validate."""
    return space.spec.folds if space.spec.validation == "kfold" else None


def fold_of(space: Space, position: int) -> int | None:
    """The fold the trial's repeat at ``position`` holds out (a confirmation's extra seeds go round the folds
    again); None outside kfold."""
    folds = folds_of(space)
    return None if folds is None else position % folds


def repeat_data(space: Space, data: Dataset, position: int) -> Dataset:
    """What the repeat at ``position`` trains and validates on: its fold's parts, or ``data`` as it is."""
    fold = fold_of(space, position)
    return data if fold is None else fold_part(data, folds_of(space) or 0, fold)


def report_fold(trial: optuna.Trial, space: Space, results: list[RepeatResult], more: bool) -> bool:
    """Tell Optuna the value of the fold just trained (``results[-1]``; every fold, so a finished trial has the
    whole series the Wilcoxon pruner pairs others with) and, when ``more`` folds are to come, ask whether the
    trial is pruned."""
    metric = space.spec.objective.metric
    values = [r.best(metric) for r in results]
    if values[-1] is None:
        return False  # a fold with no validation score: nothing to compare
    done = [v for v in values if v is not None]
    told = values[-1] if space.spec.sweep.pruner.name == "wilcoxon" else sum(done) / len(done)
    trial.report(told, step=fold_of(space, len(results) - 1) or 0)
    return more and trial.should_prune()
