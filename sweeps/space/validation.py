"""The ``validation: kfold`` checks that need several sections of a space file at once (its defaults:
``sweeps.space.folds``)."""

from __future__ import annotations

from pathlib import PurePath

from sweeps.space.schema import SpaceFile

KFOLD_SUFFIXES = (".csv", ".parquet", ".npz")  # data held in memory as rows


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
