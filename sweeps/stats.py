"""Small statistics for the report: confidence intervals over seeds, overfitting onset in a learning curve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Spread:
    """Mean, 95 % confidence half-width (Student t), min, max and count of a sample."""

    mean: float
    ci95: float
    std: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return ""
        half = f" ± {self.ci95:.4f}" if self.n > 1 else ""
        return f"{self.mean:.4f}{half} (n={self.n})"


def spread(values: Sequence[float | None]) -> Spread:
    """The :class:`Spread` of the known (non-missing, finite) ``values``."""
    sample = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(sample)
    if n == 0:
        return Spread(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    std = float(sample.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return Spread(float(sample.mean()), half, std, float(sample.min()), float(sample.max()), n)


def overfitting_onset(loss: Sequence[float], val_loss: Sequence[float]) -> int | None:
    """First epoch (1-based) after which validation loss only rises while training loss keeps falling.

    That is the epoch after the validation-loss minimum, provided validation loss ends higher than
    that minimum and training loss ends lower than it was there; None when the curves show no
    overfitting (validation loss still at its best at the end, or training loss stopped falling).
    """
    if len(val_loss) < 2 or len(loss) != len(val_loss):
        return None
    best = int(np.nanargmin(val_loss))
    if best == len(val_loss) - 1:
        return None
    if val_loss[-1] > val_loss[best] and loss[-1] < loss[best]:
        return best + 2  # the first epoch whose validation loss is above the minimum
    return None
