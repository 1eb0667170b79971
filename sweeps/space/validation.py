"""The ``validation: kfold`` keys of a space file: their defaults (a fold is a repeat) and the checks that need
several sections at once."""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeps.space.schema import SpaceFile

DEFAULT_FOLDS = 5
KFOLD_SUFFIXES = (".csv", ".parquet", ".npz")  # data held in memory as rows


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


def check_validation(spec: SpaceFile) -> None:
    """What a kfold space may combine with; a ValueError('<field>: <why>') otherwise."""
    kfold = spec.validation == "kfold"
    if spec.folds is not None and not kfold:
        raise ValueError("folds: only with validation: kfold")
    if spec.sweep.pruner.name == "wilcoxon" and not kfold:
        raise ValueError("sweep.pruner.name: wilcoxon compares a trial's folds with the best trial's; it needs "
                         "validation: kfold (use median, or another pruner, across epochs)")
    if not kfold:
        return
    if isinstance(spec.dataset, str):
        raise ValueError(f"validation: kfold is for data of yours (a table or an .npz); {spec.dataset} keeps its "
                         "documented holdout")
    if PurePath(spec.dataset.path).suffix not in KFOLD_SUFFIXES:
        raise ValueError(f"validation: kfold needs a table (.csv, .parquet) or an .npz, not {spec.dataset.path} "
                         "(images are streamed from disk: use validation: holdout)")
    if spec.sweep.repeats != spec.folds:
        raise ValueError(f"sweep.repeats: with validation: kfold each of the {spec.folds} folds is one repeat (one "
                         "seed each); leave repeats out")
