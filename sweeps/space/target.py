"""The space's target bar (``target:``, bounds on test scores): whether scores meet it, and the bar as words. One
rule for the report's PASS/FAIL and for the sweep's ``sweep.stop.on_target``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def target_text(target: dict, joiner: str = " and ") -> str:
    """The target bar as words: ``test_accuracy ≥ 0.89 and test_loss ≤ 0.33``."""
    return joiner.join(f"{m} {'≥ ' + str(b.min) if b.min is not None else ''}{'≤ ' + str(b.max) if b.max is not None else ''}"
                       for m, b in target.items())


def meets_target(row: Mapping[str, Any], target: dict) -> bool | None:
    """Whether the mean test metrics of ``row`` (``<metric>_mean`` keys: a report's row, a trial run's metrics) meet
    every bound of the target (None if unknown, or no bar)."""
    if not target:
        return None
    verdicts = []
    for metric, bound in target.items():
        value = row.get(f"{metric}_mean")
        if value is None or math.isnan(value):
            return None
        verdicts.append((bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max))
    return all(verdicts)
