"""A resume point as files and values (no TensorFlow at import): what a repeat kept after an epoch, read back by
whoever ships it (the sweep's store) or trains on from it (:mod:`experiments.resume`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

WEIGHTS = "last.weights.h5"  # Keras's weights file holds the optimizer's variables too
STATE = "state.json"
BEST = "best.keras"
POINT_FILES = (WEIGHTS, STATE)  # a point has both (and the best checkpoint, once an epoch improved)

CheckpointHook = Callable[[Path, int], None]  # (the folder holding the point, epochs done)


@dataclass(frozen=True)
class ResumePoint:
    """A repeat as it stood after ``epoch`` epochs: the files in ``folder`` and its bookkeeping."""

    folder: Path
    epoch: int
    history: dict[str, list[float]]
    counters: dict[str, dict[str, Any]]  # by callback class name
    done: bool  # training had ended at this epoch (early stopping, the deadline): only the test score was left

    @classmethod
    def read(cls, folder: Path) -> ResumePoint | None:
        """The point kept in ``folder``, or None when it holds none."""
        if not all((folder / name).is_file() for name in POINT_FILES):
            return None
        state = json.loads((folder / STATE).read_text())
        return cls(folder, state["epoch"], state["history"], state["counters"], state["done"])

    def restore(self, model: keras.Model, callbacks: list[keras.callbacks.Callback]) -> None:
        """Load the weights and optimizer state into the compiled ``model`` and give the callbacks their counters
        back (after their ``on_train_begin``, which resets them)."""
        model.optimizer.build(model.trainable_variables)
        model.load_weights(self.folder / WEIGHTS)
        self.restore_counters(callbacks)

    def restore_counters(self, callbacks: list[keras.callbacks.Callback]) -> None:
        for callback in callbacks:
            for name, value in self.counters.get(type(callback).__name__, {}).items():
                setattr(callback, name, value)
