"""A metric's direction is known in one place, and everything that picks "the best" follows it."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.data.loading import load_dataset
from experiments.data.raw import UserData
from experiments.metrics import UnknownMetric, direction, metric_mode
from experiments.settings import TrainSettings
from experiments.train import _best_epoch, train_repeat
from sweeps.space.schema import METRICS, SECONDARY, TARGET_METRICS, SpaceFile

LOWER_IS_BETTER = {"val_loss", "val_mae", "test_loss", "test_mae", "param_count", "epoch_time_s"}


@pytest.mark.parametrize("name", sorted({*METRICS, *SECONDARY, *TARGET_METRICS}))
def test_every_metric_a_space_may_name_has_its_direction(name: str):
    assert metric_mode(name) == ("min" if name in LOWER_IS_BETTER else "max")


@pytest.mark.parametrize("name", ["val_mse", "val_rmse", "val_huber", "val_mean_squared_error", "val_kl_loss"])
def test_errors_and_losses_are_minimised_and_unknown_names_refused(name: str):
    assert direction(name) == "minimize"
    with pytest.raises(UnknownMetric, match="val_score: not known"):
        metric_mode("val_score")


@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30),
       metric=st.sampled_from(sorted(METRICS)), first=st.integers(1, 50))
@settings(max_examples=200, deadline=None)
def test_the_best_epoch_is_the_argmin_or_argmax_of_its_metric(values: list[float], metric: str, first: int):
    pick = np.argmax if metric_mode(metric) == "max" else np.argmin
    assert _best_epoch({metric: values}, metric, first) == int(pick(values)) + first


@pytest.mark.parametrize(("task", "metric"), [("regression", None), ("regression", "val_loss"),
                                              ("classification", None), ("classification", "val_loss")])
def test_a_space_optimises_its_metric_the_way_it_is_better(task: str, metric: str | None):
    spec = SpaceFile.model_validate({"dataset": {"path": "d.csv", "target": "y"}, "task": task, "model": "mlp",
                                     **({"objective": {"metric": metric}} if metric else {})})
    chosen = spec.objective.metric
    assert chosen == metric or chosen == ("val_mae" if task == "regression" else "val_accuracy")
    assert spec.objective.directions == [direction(chosen)]
    assert spec.objective.resolved_direction == ("maximize" if chosen == "val_accuracy" else "minimize")


def test_a_direction_that_contradicts_the_metric_is_refused():
    with pytest.raises(ValueError, match="direction: val_mae is better low, so it is minimized"):
        SpaceFile.model_validate({"dataset": {"path": "d.csv", "target": "y"}, "task": "regression", "model": "mlp",
                                  "objective": {"direction": "maximize"}})


def friedman_csv(path: Path, rows: int = 600) -> Path:
    """Friedman #1 (scikit-learn's generator): ten features, five of them used, a target of about 0–30."""
    import pandas as pd
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=rows, noise=1.0, random_state=3)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(y=y)
    frame.to_csv(path, index=False)
    return path


def test_a_regression_keeps_the_epoch_of_least_validation_error(tmp_path: Path):
    data = load_dataset(UserData(friedman_csv(tmp_path / "f.csv"), target="y", regression=True), "holdout", 0.2)
    settings = TrainSettings(epochs=6, batch_size=32, learning_rate=0.003, loss="mse", metrics=("mae",),
                             monitor="val_mae", patience=10, verbose=0)
    result = train_repeat("mlp", {"units": 32}, settings, data, seed=1, workdir=tmp_path / "w")
    errors = result.history["val_mae"]
    assert result.best_epoch == int(np.argmin(errors)) + 1 and errors[-1] < errors[0]  # it learnt: a worst epoch exists
    restored = keras.models.load_model(result.checkpoint)
    _, val_mae = restored.evaluate(data.x_val, data.y_val, verbose=0)
    assert val_mae == pytest.approx(min(errors), rel=1e-5)


@given(values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=12, unique=True),
       metric=st.sampled_from(sorted(METRICS)))
@settings(max_examples=60, deadline=None)
def test_the_studys_best_trial_and_the_reports_first_row_are_the_argmin_or_argmax(values: list[float], metric: str):
    import optuna
    import pandas as pd

    from sweeps.results.study_results import trials_table
    from sweeps.store.trials import best_trial

    study = optuna.create_study(direction=direction(metric))
    for value in values:
        study.tell(study.ask(), value)
    pick = int(np.argmax(values) if metric_mode(metric) == "max" else np.argmin(values))
    assert best_trial(study).number == pick
    raw = study.trials_dataframe(attrs=("number", "state", "value", "duration", "datetime_start", "datetime_complete"))
    repeats = pd.DataFrame({"trial": range(len(values)), "seed": 42, metric: values, "test_accuracy": None,
                            "test_loss": None, "test_mae": None, "epochs": 1, "param_count": 1, "run_id": "r",
                            "stop_reason": "max_epochs"})
    table = trials_table(raw, repeats, metric, maximise=study.direction == optuna.study.StudyDirection.MAXIMIZE)
    assert table.iloc[0]["number"] == pick
