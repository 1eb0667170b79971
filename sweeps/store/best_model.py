"""The best model of a study: find its checkpoint in MLflow, register it, classify new images with it."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
import optuna
import pandas as pd
import tensorflow as tf
from PIL import Image, ImageOps

from experiments.data import DATASETS, load_raw, to_model_input
from experiments.evaluate import TestScores, robustness, score
from sweeps.search.progress import best_trial
from sweeps.store.records import KIND, REPEAT_RUN, SEED, TRIAL, TRIAL_RUN
from sweeps.store.tracking import Tracker

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
    runs = tracker.runs()
    if runs.empty:
        return None
    mine = runs[(runs[f"tags.{TRIAL}"] == str(best.number)) & runs[f"tags.{SEED}"].notna()
                & runs[f"tags.{KIND}"].isin([TRIAL_RUN, REPEAT_RUN])]
    if mine.empty:
        return None
    first = mine.assign(seed=mine[f"tags.{SEED}"].astype(int)).sort_values("seed").iloc[0]
    return BestRun(trial=best.number, run_id=first["run_id"], seed=int(first["seed"]), value=best.values[0])


def load_checkpoint(tracker: Tracker, run_id: str, cache_dir: Path) -> keras.Model:
    """Download (once) and load the best checkpoint logged to ``run_id``."""
    local = cache_dir / run_id / Path(CHECKPOINT).name
    if not local.is_file():  # workers share the cache: download privately, then rename into place
        local.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=local.parent) as tmp:
            os.replace(tracker.client.download_artifacts(run_id, CHECKPOINT, tmp), local)
    return keras.models.load_model(local)


def register_best(study: optuna.Study, tracker: Tracker, sweep_run: str, cache_dir: Path) -> str | None:
    """Log the best model (MLflow Keras flavour) in the sweep run and register it under the study's name.

    A new version is registered only when the best trial changed since the last one. Returns its URI.
    """
    best = best_run(study, tracker)
    if best is None:
        return None
    name = study.study_name
    versions = tracker.client.search_model_versions(f"name='{name}'")
    if any(v.tags.get("trial") == str(best.trial) for v in versions):
        return None
    model = load_checkpoint(tracker, best.run_id, cache_dir)
    requirements = [f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"]
    example = np.zeros((1, *model.input_shape[1:]), dtype=np.float32)
    signature = mlflow.models.infer_signature(example, model.predict(example, verbose=0))
    with tempfile.TemporaryDirectory() as tmp:  # the client API: no process-wide active run or tracking URI
        mlflow.keras.save_model(model, str(Path(tmp) / "best_model"), signature=signature, pip_requirements=requirements)
        tracker.client.log_artifacts(sweep_run, str(Path(tmp) / "best_model"), "best_model")
    try:
        tracker.client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:  # it exists (maybe just made by another worker)
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {"trial": best.trial, "seed": best.seed, "source_run": best.run_id, "value": best.value}
    version = tracker.client.create_model_version(name, f"runs:/{sweep_run}/best_model", run_id=sweep_run,
                                                  tags={k: str(v) for k, v in tags.items()})
    return f"models:/{name}/{version.version}"


def prepare_image(path: Path) -> np.ndarray:
    """Any PNG/JPG → a (28, 28, 1) float image like the training data (light background inverted to dark)."""
    image = ImageOps.exif_transpose(Image.open(path)).convert("L")
    pixels = np.asarray(image, dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 127:  # dark object on a light background: the datasets are light on black
        image = ImageOps.invert(image)
    image = ImageOps.pad(image, (28, 28), method=Image.Resampling.LANCZOS, color=0)
    return to_model_input(np.asarray(image))


def top_k(model: keras.Model, image: np.ndarray, class_names: tuple[str, ...], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one image, with their probabilities."""
    probabilities = model.predict(image[np.newaxis], verbose=0)[0]
    order = np.argsort(-probabilities)[:k]
    return [(class_names[i], float(probabilities[i])) for i in order]


@dataclass
class BestModelScores:
    """The best checkpoint scored on the full test set of its dataset."""

    run: BestRun
    scores: TestScores
    robustness: pd.DataFrame
    x_test: np.ndarray


def evaluate_best(study: optuna.Study, tracker: Tracker, dataset: str, cache_dir: Path) -> BestModelScores | None:
    """Load the best checkpoint and score it on all test images: confusion, mistakes, robustness."""
    run = best_run(study, tracker)
    if run is None:
        return None
    raw = load_raw(dataset)
    x = to_model_input(raw.arrays["x_test"])
    y = raw.arrays["y_test"].astype(np.int64)
    saved = cache_dir / run.run_id / "test_scores.npz"  # a checkpoint never changes: score it once
    if saved.is_file():
        with np.load(saved) as f:
            probabilities = f["probabilities"]
            rob = pd.DataFrame({"perturbation": f["perturbation"], "accuracy": f["accuracy"]})
    else:
        model = load_checkpoint(tracker, run.run_id, cache_dir)
        probabilities, rob = score(model, x, y, ()).probabilities, robustness(model, x, y)
        np.savez(saved, probabilities=probabilities, perturbation=rob["perturbation"].to_numpy(str),
                 accuracy=rob["accuracy"].to_numpy())
    scores = TestScores(y_true=y, probabilities=probabilities, class_names=DATASETS[dataset].class_names)
    return BestModelScores(run=run, scores=scores, robustness=rob, x_test=x)
