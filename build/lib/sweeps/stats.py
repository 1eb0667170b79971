"""Small statistics for the report: confidence intervals over seeds, whether the best config beats another,
overfitting onset in a learning curve."""

from __future__ import annotations

import math
import warnings
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


@dataclass(frozen=True)
class Difference:
    """The best config's mean score minus another's over their seeds, with Welch's 95 % confidence interval."""

    mean: float
    low: float
    high: float
    n_best: int
    n_other: int
    better: bool  # the interval excludes 0 on the best's side

    @property
    def verdict(self) -> str:
        if self.better:
            return "better"
        seeds = f"n = {self.n_best}" if self.n_best == self.n_other else f"n = {self.n_best} and {self.n_other}"
        return f"not distinguishable with {seeds} seeds"

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def compare(best: Sequence[float | None], other: Sequence[float | None], maximise: bool) -> Difference | None:
    """Is ``best`` (one config's scores over seeds) better than ``other``? Welch's t-test, which does not assume
    equal spreads; None when either has fewer than 2 seeds (no spread to judge by)."""
    a, b = (np.asarray([v for v in s if v is not None and math.isfinite(v)], dtype=float) for s in (best, other))
    if len(a) < 2 or len(b) < 2:
        return None
    with warnings.catch_warnings():  # identical seeds: scipy warns, and the interval is the difference itself
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    diff = float(a.mean() - b.mean())
    low, high = (float(interval.low), float(interval.high)) if math.isfinite(interval.low) else (diff, diff)
    better = low > 0 if maximise else high < 0
    return Difference(diff, low, high, len(a), len(b), better)


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
