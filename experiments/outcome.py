"""What a training produces and starts from, as plain values (no TensorFlow): a repeat's result, and the earlier
weights a promoted trial continues from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class RepeatResult:
    """What one seeded training produced."""

    seed: int
    history: dict[str, list[float]] = field(default_factory=dict)
    stop_reason: str = "interrupted"
    best_epoch: int | None = None  # 1-based
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_mae: float | None = None  # a regression's
    param_count: int = 0
    wall_time_s: float = 0.0
    checkpoint: Path | None = None
    summary: str = ""
    first_epoch: int = 1  # later than 1 when training continued from earlier weights

    @property
    def test_scores(self) -> dict[str, float]:
        """The test metrics measured: the loss, and the accuracy (a classifier) or the mean absolute error."""
        scores = {"test_accuracy": self.test_accuracy, "test_loss": self.test_loss, "test_mae": self.test_mae}
        return {name: value for name, value in scores.items() if value is not None}

    @property
    def test_score(self) -> str:
        """The name of the test score beside the loss: test_mae for a regression, else test_accuracy."""
        return "test_mae" if self.test_mae is not None else "test_accuracy"

    @property
    def epochs(self) -> int:
        """Epochs trained."""
        return len(self.history.get("loss", []))

    def best(self, metric: str) -> float | None:
        """``metric`` at the best (checkpointed) epoch."""
        if self.best_epoch is None or metric not in self.history:
            return None
        return self.history[metric][self.best_epoch - self.first_epoch]


@dataclass(frozen=True)
class WarmStart:
    """Continue from earlier weights at a later epoch (a Hyperband round promoting a trial)."""

    weights: list[np.ndarray]
    initial_epoch: int
