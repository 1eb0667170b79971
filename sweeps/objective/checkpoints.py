"""The models a sweep keeps: a trial's best checkpoint loaded from its MLflow run, and the best model registered in
MLflow's model registry (the Keras flavour, once per best trial)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras
import mlflow
import numpy as np
import optuna
import tensorflow as tf

import experiments.models  # noqa: F401  (registers the layers a table model is saved with, for load_model)
from sweeps.errors import MissingCheckpoint, one_line
from sweeps.store.keys import MODEL_SEED, MODEL_SOURCE_RUN, MODEL_TRIAL, MODEL_VALUE
from sweeps.store.registry import (
    CHECKPOINT,
    best_run,
    input_scale,
    keep_first_version,
    point_best_alias,
    selected_versions,
)
from sweeps.store.tracking import Tracker


def load_checkpoint(tracker: Tracker, run_id: str, cache_dir: Path) -> keras.Model:
    """Download (once) and load the best checkpoint logged to ``run_id``."""
    local = cache_dir / run_id / Path(CHECKPOINT).name
    if not local.is_file():  # workers share the cache: download privately, then rename into place
        local.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=local.parent) as tmp:
            try:
                downloaded = tracker.client.download_artifacts(run_id, CHECKPOINT, tmp)
            except (OSError, mlflow.exceptions.MlflowException) as exc:
                raise MissingCheckpoint(f"MLflow run {run_id}: its checkpoint cannot be read ({one_line(exc)}); was the "
                                        "artifact folder (mlruns/) moved or deleted?") from None
            os.replace(downloaded, local)
    try:
        return keras.models.load_model(local, compile=False)  # for inference: the training optimizer is not needed
    except (OSError, ValueError) as exc:  # not a Keras file (damaged, or a simulated trial's stand-in)
        raise MissingCheckpoint(f"MLflow run {run_id}: its checkpoint cannot be loaded ({one_line(exc)})") from None


def register_best(study: optuna.Study, tracker: Tracker, sweep_run: str, cache_dir: Path) -> str | None:
    """Log the best model (MLflow Keras flavour) in the sweep run and register it under the study's name.

    A new version is registered only when the best trial changed since the last one; one version per best trial
    even when several workers finish at once. The alias ``best`` points at the best trial's version either way.
    Returns the new version's URI (None when nothing was registered).
    """
    best = best_run(study, tracker)
    if best is None:
        return None
    name = study.study_name
    if any(v.tags.get(MODEL_TRIAL) == str(best.trial) for v in selected_versions(tracker.client, name)):
        point_best_alias(tracker.client, name, best.trial)
        return None
    model = load_checkpoint(tracker, best.run_id, cache_dir)
    tags = {MODEL_TRIAL: best.trial, MODEL_SEED: best.seed, MODEL_SOURCE_RUN: best.run_id, MODEL_VALUE: best.value}
    version = register_model(tracker, name, model, sweep_run, "best_model", tags, input_scale(study))
    kept = keep_first_version(tracker.client, name, best.trial, version)
    point_best_alias(tracker.client, name, best.trial)
    return f"models:/{name}/{kept}"


def register_model(tracker: Tracker, name: str, model: keras.Model, run_id: str, folder: str,
                   tags: dict[str, object], input_scale: float | None) -> int:
    """Log ``model`` (MLflow Keras flavour, with its signature and pinned requirements) under ``folder`` of run
    ``run_id`` and register it as a new version of model ``name``; return the version number.

    The registered model takes the data as it is stored: for 0-255 pixels (``input_scale`` 1/255) a
    ``Rescaling`` layer in front of the trained one does what the training data loader did, so a user feeds
    images as they are.
    """
    requirements = [f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"]
    if input_scale is not None:
        model = keras.Sequential([keras.Input(model.input_shape[1:]), keras.layers.Rescaling(input_scale), model],
                                 name=f"{model.name}_raw_inputs")
    example = np.full((1, *model.input_shape[1:]), 1 / (input_scale or 1), dtype=np.float32)
    signature = mlflow.models.infer_signature(example, model.predict(example, verbose=0))
    with tempfile.TemporaryDirectory() as tmp:  # the client API: no process-wide active run or tracking URI
        mlflow.keras.save_model(model, str(Path(tmp) / folder), signature=signature, pip_requirements=requirements)
        tracker.client.log_artifacts(run_id, str(Path(tmp) / folder), folder)
    try:
        tracker.client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:  # it exists (maybe just made by another worker)
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = tracker.client.create_model_version(name, f"runs:/{run_id}/{folder}", run_id=run_id,
                                                  tags={k: str(v) for k, v in tags.items()})
    return int(version.version)
