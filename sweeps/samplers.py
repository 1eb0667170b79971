"""Optuna samplers and pruners named in a space's ``sweep:`` section."""

from __future__ import annotations

import warnings

import optuna

from sweeps.space import Space, SpaceError

PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


def make_sampler(space: Space, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The space's sampler, seeded with ``sweep.seed + seed_offset``. TPE is multivariate and grouped
    (conditional params)."""
    spec = space.spec.sweep.sampler
    seed = space.spec.sweep.seed + seed_offset
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if spec.name == "tpe":
                return optuna.samplers.TPESampler(**{"seed": seed, "multivariate": True, "group": True, **spec.options})
            if spec.name == "random":
                return optuna.samplers.RandomSampler(**{"seed": seed, **spec.options})
            return optuna.samplers.GridSampler(space.grid(), **{"seed": seed, **spec.options})
    except (TypeError, ValueError) as exc:
        raise SpaceError(f"{space.path}: sweep.sampler.options: {exc}") from None


def make_pruner(space: Space) -> optuna.pruners.BasePruner:
    """The space's pruner (``none`` disables pruning)."""
    spec = space.spec.sweep.pruner
    try:
        return PRUNERS[spec.name](**spec.options)
    except (TypeError, ValueError) as exc:
        raise SpaceError(f"{space.path}: sweep.pruner.options: {exc}") from None
