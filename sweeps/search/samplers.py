"""Optuna samplers and pruners named in a space's ``sweep:`` section."""

from __future__ import annotations

import importlib.util
import warnings

import optuna

from sweeps.space.space import Space, SpaceError

PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,  # across a kfold trial's folds (sweeps.objective.folds)
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
            if spec.name == "grid":
                return optuna.samplers.GridSampler(space.grid(), **{"seed": seed, **spec.options})
            if spec.name == "qmc":
                return optuna.samplers.QMCSampler(**{"seed": seed, "warn_independent_sampling": False, **spec.options})
            if spec.name == "gp":
                _require("torch", "the gp sampler needs PyTorch: pip install torch (a CPU build is enough)", space)
                return optuna.samplers.GPSampler(**{"seed": seed, **spec.options})
            # CMA-ES models int/float params; categorical ones are sampled independently (seeded alike).
            independent = optuna.samplers.RandomSampler(seed=seed)
            return optuna.samplers.CmaEsSampler(**{"seed": seed, "independent_sampler": independent,
                                                   "warn_independent_sampling": False, **spec.options})
    except (TypeError, ValueError) as exc:
        raise SpaceError(f"{space.path}: sweep.sampler.options: {exc}") from None


def _require(module: str, why: str, space: Space) -> None:
    if importlib.util.find_spec(module) is None:
        raise SpaceError(f"{space.path}: sweep.sampler.name: {why}")


def make_pruner(space: Space) -> optuna.pruners.BasePruner:
    """The space's pruner (``none`` disables pruning)."""
    spec = space.spec.sweep.pruner
    defaults = {"percentile": {"percentile": 25.0}}.get(spec.name, {})
    try:
        with warnings.catch_warnings():  # WilcoxonPruner is experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return PRUNERS[spec.name](**{**defaults, **spec.options})
    except (TypeError, ValueError) as exc:
        raise SpaceError(f"{space.path}: sweep.pruner.options: {exc}") from None
