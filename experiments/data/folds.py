"""k-fold cross-validation: which training rows each fold validates on, and one fold's training and validation
parts. Each repeat of a ``validation: kfold`` trial trains with its fold held out (``sweeps.objective.trial``)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from experiments.data.loading import Dataset, TargetScale
from experiments.data.tables import TEST_SPLIT_SEED, TableFront
from experiments.errors import DataError


def fold_rows(y: np.ndarray, folds: int, classes: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (training rows, validation rows) of each fold: every row validated exactly once. Stratified by class
    for a classification (scikit-learn's StratifiedKFold), a plain shuffled KFold for a regression; seeded with
    TEST_SPLIT_SEED, a property of the file as the holdout's, so every sweep and every trial of it sees the same
    folds whatever its seed."""
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if classes else KFold)(n_splits=folds, shuffle=True, random_state=TEST_SPLIT_SEED)
    try:
        with warnings.catch_warnings():  # a class with fewer rows than folds: some folds lack it, said below
            warnings.simplefilter("ignore", UserWarning)
            return list(splitter.split(np.zeros(len(y)), y if classes else None))
    except ValueError as exc:
        raise DataError(f"folds: {folds} folds of {len(y)} training rows: {exc}") from None


def fold_part(data: Dataset, folds: int, index: int) -> Dataset:
    """``data`` (loaded with ``validation="kfold"``: every training row, nothing held out) as fold ``index`` of
    ``folds`` trains on it: that fold's rows held out for validation. A table's standardisation and a regression's
    target scale are fitted again on the fold's training part alone, so its validation rows leak into neither."""
    train, val = fold_rows(data.y_train, folds, bool(data.class_names))[index]
    x_train, y_train = data.x_train[train], data.y_train[train]
    return dataclasses.replace(
        data, x_train=x_train, y_train=y_train, x_val=data.x_train[val], y_val=data.y_train[val],
        front=TableFront.fit(data.front.schema, x_train) if data.front is not None else None,
        target=TargetScale.fit(y_train) if data.target is not None else None,
    )
