"""The ``validation: kfold`` keys' defaults: a fold is a repeat (checked in ``sweeps.space.validation``)."""

from __future__ import annotations

from typing import Any

DEFAULT_FOLDS = 5


def kfold_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Before validation: a kfold space trains one repeat per fold (``sweep.repeats`` is its folds) and prunes
    across folds with Wilcoxon's test unless it names another pruner."""
    if data.get("validation") != "kfold":
        return data
    folds = data.setdefault("folds", DEFAULT_FOLDS)
    sweep = data.get("sweep", {})
    objective = data.get("objective")
    secondary = isinstance(objective, dict) and objective.get("secondary")  # two objectives: nothing prunes
    if isinstance(sweep, dict) and isinstance(folds, int):
        data["sweep"] = {"repeats": folds, **({} if secondary else {"pruner": {"name": "wilcoxon"}}), **sweep}
    return data
