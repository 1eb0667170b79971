"""The best model of a study as the stores hold it: the run holding its checkpoint, the versions registered in the
MLflow model registry (one per best trial) and the alias ``best`` on the version of the study's best trial now
(moved when a trial is excluded or included by hand, as the best changes then without a new version). Loading and registering a model (TensorFlow) is
:mod:`sweeps.objective.checkpoints`."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import optuna

from sweeps.store.keys import (
    BEST_ALIAS,
    INPUT_SCALE,
    KIND,
    MODEL_EXCLUDED,
    MODEL_REFIT,
    MODEL_TRIAL,
    REPEAT_RUN,
    SEED,
    TRIAL,
    TRIAL_RUN,
)
from sweeps.store.tracking import Tracker
from sweeps.store.trials import best_trial

CHECKPOINT = "checkpoint/best.keras"


@dataclass(frozen=True)
class BestRun:
    """The MLflow run holding the best trial's checkpoint (its first seed)."""

    trial: int
    run_id: str
    seed: int
    value: float  # the trial's objective


def best_run(study: optuna.Study, tracker: Tracker) -> BestRun | None:
    """The best completed trial's first repeat run, or None before any trial completed."""
    best = best_trial(study)
    if best is None:
        return None
    first = _first_seed(tracker, best.number)
    if first is None:
        return None
    return BestRun(trial=best.number, run_id=first[0], seed=first[1], value=best.values[0])


def first_seed_run(tracker: Tracker, trial: int) -> str | None:
    """The id of the run holding ``trial``'s checkpoint of its first seed (None when it has none)."""
    first = _first_seed(tracker, trial)
    return first[0] if first else None


def _first_seed(tracker: Tracker, trial: int) -> tuple[str, int] | None:
    runs = tracker.runs(trial=trial)
    if runs.empty:
        return None
    mine = runs[(runs[f"tags.{TRIAL}"] == str(trial)) & runs[f"tags.{SEED}"].notna()
                & runs[f"tags.{KIND}"].isin([TRIAL_RUN, REPEAT_RUN])]
    if mine.empty:
        return None
    first = mine.assign(seed=mine[f"tags.{SEED}"].astype(int)).sort_values("seed").iloc[0]
    return first["run_id"], int(first["seed"])


def input_scale(study: optuna.Study) -> float | None:
    """What the study's raw inputs were multiplied by before the model (studies from before it was recorded: 0-255
    pixels)."""
    return study.user_attrs.get(INPUT_SCALE, 1 / 255)


def selected_versions(client: mlflow.MlflowClient, name: str) -> list:
    """The versions of model ``name`` registered by sweeps (refits left out)."""
    return [v for v in client.search_model_versions(f"name='{name}'") if v.tags.get(MODEL_REFIT) != "true"]


def keep_first_version(client: mlflow.MlflowClient, name: str, trial: int, mine: int) -> int:
    """After registering version ``mine`` of ``trial``: when another process registered the same trial too (both
    saw none before), the lowest version stays and this process deletes its own; returns the version kept."""
    same = sorted(int(v.version) for v in selected_versions(client, name) if v.tags.get(MODEL_TRIAL) == str(trial))
    if same and same[0] != mine:
        client.delete_model_version(name, str(mine))
        return same[0]
    return mine


def point_best_alias(client: mlflow.MlflowClient, name: str, trial: int | None) -> int | None:
    """Point model ``name``'s alias ``best`` at the first version of ``trial`` (the study's best trial); with no such
    version (not registered yet: the next registration makes one) the alias is removed, never left on another
    trial. Returns the version it points at."""
    versions = sorted(int(v.version) for v in selected_versions(client, name) if v.tags.get(MODEL_TRIAL) == str(trial))
    if versions:
        _set_best_alias(client, name, versions[0])
        return versions[0]
    try:
        client.delete_registered_model_alias(name, BEST_ALIAS)
    except mlflow.exceptions.MlflowException:  # no registered model, or no alias: nothing points anywhere
        pass
    return None


def _set_best_alias(client: mlflow.MlflowClient, name: str, version: int) -> None:
    """Point the alias at ``version``. MLflow's store sets an alias by reading it, then inserting or updating it
    (SQLAlchemy's ``merge``): when two workers set it at once, both can insert and the second gets the database's
    key error, worded by each database its own way. A second try reads the row the first wrote and updates it; any
    other error comes back from it too."""
    try:
        client.set_registered_model_alias(name, BEST_ALIAS, str(version))
    except mlflow.exceptions.MlflowException:
        client.set_registered_model_alias(name, BEST_ALIAS, str(version))


def tag_excluded(client: mlflow.MlflowClient, name: str, excluded: dict[str, str]) -> None:
    """Tag each version of an excluded trial with its reason, and untag a version whose trial was let back in."""
    for version in selected_versions(client, name):
        reason = excluded.get(version.tags.get(MODEL_TRIAL, ""))
        if reason is not None and version.tags.get(MODEL_EXCLUDED) != reason:
            client.set_model_version_tag(name, version.version, MODEL_EXCLUDED, reason)
        elif reason is None and MODEL_EXCLUDED in version.tags:
            client.delete_model_version_tag(name, version.version, MODEL_EXCLUDED)
