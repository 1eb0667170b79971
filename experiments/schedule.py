"""A cosine learning-rate schedule whose end can move earlier while training runs."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="experiments")
class FittedCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Keras's ``CosineDecay`` (to 0, no warm-up) with its horizon in a variable: when a trial's time runs short,
    :class:`experiments.train.TimeBudget` moves the horizon to the last epoch that still fits, so the rate still
    decays to 0 by then (a model cut mid-schedule stops at a high rate and scores worse)."""

    def __init__(self, initial_learning_rate: float, decay_steps: float):
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.planned_steps = float(decay_steps)
        self.horizon = keras.Variable(self.planned_steps, dtype="float32", trainable=False, name="cosine_horizon")

    def __call__(self, step):
        horizon = ops.maximum(ops.convert_to_tensor(self.horizon), 1.0)
        done = ops.minimum(ops.cast(step, "float32"), horizon) / horizon
        return self.initial_learning_rate * 0.5 * (1.0 + ops.cos(math.pi * done))

    def cut(self, steps: float) -> None:
        """End the decay ``steps`` earlier than planned."""
        self.horizon.assign(self.planned_steps - steps)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.planned_steps}
