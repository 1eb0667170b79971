"""Use a finished study: classify images with its best model, or train one of its trials again to check it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from optuna.storages import BaseStorage
from PIL import Image, ImageOps
from rich.console import Console

from experiments.data import DATASETS, load_dataset, load_raw, to_model_input
from experiments.train import train_repeat
from sweeps.errors import UsageError
from sweeps.search.study import existing_study, trial_config
from sweeps.store.records import INITIAL_EPOCH, KIND, QUICK, QUICK_STUDY, REPRODUCTION_RUN, STUDY, TRIAL
from sweeps.store.registry import best_run, load_checkpoint


def predict(name: str, storage: BaseStorage, url: str, tracking: str, cache_dir: Path, console: Console,
            image: Path | None = None, test_index: int | None = None) -> list[tuple[str, float]]:
    """Print the top-3 classes of an image file, or of test image ``test_index``, by the study's best model."""
    study, space, tracker = existing_study(name, storage, url, tracking)
    run = best_run(study, tracker)
    if run is None:
        raise UsageError(f"study {name!r} has no completed trial yet")
    class_names = DATASETS[space.spec.dataset].class_names
    if image is not None:
        try:
            pixels, label = prepare_image(image), None
        except (OSError, ValueError) as exc:
            raise UsageError(f"IMAGE={image}: not a readable PNG/JPG image ({exc})") from None
    else:
        test_index = test_index or 0
        raw = load_raw(space.spec.dataset)
        if not 0 <= test_index < len(raw.arrays["y_test"]):
            raise UsageError(f"--from-test {test_index}: expected 0…{len(raw.arrays['y_test']) - 1}")
        pixels = to_model_input(raw.arrays["x_test"][test_index])
        label = class_names[raw.arrays["y_test"][test_index]]
    ranked = top_k(load_checkpoint(tracker, run.run_id, cache_dir), pixels, class_names)
    console.print(f"best model of {name}: trial {run.trial}, seed {run.seed} (MLflow run {run.run_id})")
    if label is not None:
        console.print(f"test image {test_index}: true class {label}")
    for rank, (cls, probability) in enumerate(ranked, start=1):
        console.print(f"  {rank}. {cls:<12} {probability:6.1%}")
    return ranked


def reproduce(name: str, trial_number: int, storage: BaseStorage, url: str, tracking: str, workdir: Path, console: Console) -> list[dict]:
    """Train trial ``trial_number``'s params again with its seeds; log and print new vs logged scores."""
    study, space, tracker = existing_study(name, storage, url, tracking)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if trial_number not in trials:
        raise UsageError(f"--trial {trial_number}: study {name!r} has trials 0…{max(trials, default=-1)}")
    trial = trials[trial_number]
    quick = bool(study.user_attrs.get(QUICK_STUDY))
    spec = space.spec
    model_params, settings = trial_config(space, trial.params, trial.user_attrs)
    if quick:
        settings = dataclasses.replace(settings, epochs=min(settings.epochs, QUICK["epochs"]))
    if INITIAL_EPOCH in trial.user_attrs:
        console.print(f"trial {trial_number} continued an earlier trial's weights from epoch {trial.user_attrs[INITIAL_EPOCH]} "
                      f"(a Hyperband promotion); trained again from scratch over all its {settings.epochs} epochs")
    data = load_dataset(spec.dataset, spec.validation, spec.val_size, spec.sweep.seed, QUICK["subset"] if quick else None)
    tf.config.experimental.enable_op_determinism()  # two reproductions of a trial give the same numbers
    rows: list[dict[str, Any]] = []
    for seed in range(spec.sweep.seed, spec.sweep.seed + spec.sweep.repeats):
        run_id = tracker.start_run(f"reproduce-trial-{trial_number}-seed-{seed}", tags={
            KIND: REPRODUCTION_RUN, STUDY: name, TRIAL: trial_number}, params={**model_params, "seed": seed})
        result = train_repeat(spec.model, model_params, settings, data, seed, workdir / f"trial-{trial_number}-seed-{seed}")
        tracker.log_metrics(run_id, {"best_val_accuracy": result.best("val_accuracy"), "test_accuracy": result.test_accuracy,
                                     "test_loss": result.test_loss, "epochs": result.epochs})
        tracker.end_run(run_id)
        rows.append({"seed": seed, "val": result.best(spec.objective.metric), "test_accuracy": result.test_accuracy})
        console.print(f"seed {seed}: {spec.objective.metric} {rows[-1]['val']:.4f}, test accuracy {result.test_accuracy:.4f}")
    if trial.value is not None:
        mean = sum(float(r["val"]) for r in rows) / len(rows)
        console.print(f"mean {spec.objective.metric} {mean:.4f} vs {trial.value:.4f} logged by the sweep "
                      f"(difference {mean - trial.value:+.4f}; CPU kernels are not bit-exact across runs)")
    return rows


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
