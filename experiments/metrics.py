"""Which way is better for a metric: the one place that knows it.

The study's direction, the checkpoint's ``mode``, the best epoch, the Keras Tuner objective, the report's "best"
and its bar all read :func:`metric_mode`, so a metric minimised in one of them is minimised in all of them. A
name decides by what it measures, without its ``val_``/``test_`` prefix: accuracies are better high; losses,
errors and costs (parameters, seconds) better low. Any other name is refused rather than guessed.
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["min", "max"]
Direction = Literal["minimize", "maximize"]

HIGHER_IS_BETTER = frozenset({"accuracy", "auc", "precision", "recall", "f1_score"})
LOWER_IS_BETTER = frozenset({"loss", "mae", "mse", "rmse", "msle", "mape", "huber", "param_count", "epoch_time_s"})
LOWER_IS_BETTER_SUFFIXES = ("_loss", "_error")


class UnknownMetric(ValueError):
    """A metric whose better direction is not known: the space must say it."""


def metric_mode(name: str) -> Mode:
    """``"max"`` when a higher ``name`` is better (an accuracy), ``"min"`` when a lower one is (a loss, an error, a
    cost); :class:`UnknownMetric` for any other name."""
    base = name.removeprefix("val_").removeprefix("test_")
    if base in LOWER_IS_BETTER or base.endswith(LOWER_IS_BETTER_SUFFIXES):
        return "min"
    if base in HIGHER_IS_BETTER or base.endswith("_accuracy"):
        return "max"
    raise UnknownMetric(f"{name}: not known to be better high or low (accuracies are maximised; losses, errors and "
                        "costs minimised)")


def direction(name: str) -> Direction:
    """The Optuna direction of ``name``: ``"maximize"`` or ``"minimize"``."""
    return "maximize" if metric_mode(name) == "max" else "minimize"


def is_better(value: float, than: float, name: str) -> bool:
    """Whether ``value`` of metric ``name`` beats ``than``."""
    return value > than if metric_mode(name) == "max" else value < than
