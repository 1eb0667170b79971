"""Classify images with a finished study's best model."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from optuna.storages import BaseStorage
from PIL import Image, ImageOps
from rich.console import Console

from experiments.data import input_shape, model_inputs, raw_data, to_model_input
from sweeps.errors import UsageError
from sweeps.search.study import existing_study
from sweeps.store.registry import best_run, load_checkpoint


def predict(name: str, storage: BaseStorage, url: str, tracking: str, cache_dir: Path, console: Console,
            image: Path | None = None, test_index: int | None = None) -> list[tuple[str, float]]:
    """Print the top-3 classes of an image file (28x28 grey image data), or of test example ``test_index``, by the
    study's best model."""
    study, space, tracker = existing_study(name, storage, url, tracking)
    run = best_run(study, tracker)
    if run is None:
        raise UsageError(f"study {name!r} has no completed trial yet")
    raw = raw_data(space.data)
    class_names = raw.class_names
    if image is not None:
        if input_shape(space.data) != (28, 28, 1):
            raise UsageError(f"IMAGE={image}: {space.data_label} is not of 28×28 grey images; use FROM_TEST=N")
        try:
            pixels, label = prepare_image(image), None
        except (OSError, ValueError) as exc:
            raise UsageError(f"IMAGE={image}: not a readable PNG/JPG image ({exc})") from None
    else:
        test_index = test_index or 0
        if not 0 <= test_index < len(raw.arrays["y_test"]):
            raise UsageError(f"--from-test {test_index}: expected 0…{len(raw.arrays['y_test']) - 1}")
        pixels = model_inputs(raw.arrays["x_test"][test_index:test_index + 1])[0]
        label = class_names[raw.arrays["y_test"][test_index]]
    ranked = top_k(load_checkpoint(tracker, run.run_id, cache_dir), pixels, class_names)
    console.print(f"best model of {name}: trial {run.trial}, seed {run.seed} (MLflow run {run.run_id})")
    if label is not None:
        console.print(f"test image {test_index}: true class {label}")
    for rank, (cls, probability) in enumerate(ranked, start=1):
        console.print(f"  {rank}. {cls:<12} {probability:6.1%}")
    return ranked


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
