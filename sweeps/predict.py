"""Predict with a finished study's best model: an image file (image data), a CSV of rows (a table), or a test
example. The best checkpoint carries a table's own encoding, so rows go in as the user wrote them."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from optuna.storages import BaseStorage
from PIL import Image, ImageOps
from rich.console import Console

from experiments.data.loading import model_inputs, raw_data, to_model_input
from experiments.data.raw import RawData
from experiments.data.tables import read_frame
from experiments.errors import DataError
from sweeps.errors import UsageError
from sweeps.objective.checkpoints import load_checkpoint
from sweeps.search.study import existing_study
from sweeps.store.registry import best_run

GREY_28 = (28, 28, 1)  # the built-in datasets' images: any photo is fitted to them as the seed note did


def predict(name: str, storage: BaseStorage, url: str, tracking: str, cache_dir: Path, console: Console,
            image: Path | None = None, test_index: int | None = None, rows: Path | None = None,
            out: Path | None = None) -> list[tuple[str, float]]:
    """Print the top-3 classes (or the predicted number) of an image file or of test example ``test_index``; or
    predict every row of the CSV ``rows`` into the CSV ``out``."""
    study, space, tracker = existing_study(name, storage, url, tracking)
    run = best_run(study, tracker)
    if run is None:
        raise UsageError(f"study {name!r} has no completed trial yet")
    raw = raw_data(space.data)
    if rows is not None:
        model = load_checkpoint(tracker, run.run_id, cache_dir)
        written = predict_rows(model, raw, rows, out or Path(f"{rows.stem}.predictions.csv"))
        console.print(f"best model of {name}: trial {run.trial}, seed {run.seed}; {written}")
        return []
    inputs, label = _one_input(raw, space.data_label, image, test_index)
    ranked = top_k(load_checkpoint(tracker, run.run_id, cache_dir), inputs, raw.class_names)
    console.print(f"best model of {name}: trial {run.trial}, seed {run.seed} (MLflow run {run.run_id})")
    if label is not None:
        console.print(f"test example {test_index}: true {'class' if raw.class_names else 'value'} {label}")
    for rank, (cls, probability) in enumerate(ranked, start=1):
        console.print(f"  {rank}. {cls:<12} {probability:6.1%}" if raw.class_names else f"  predicted {cls}")
    return ranked


def _one_input(raw: RawData, label: str, image: Path | None, test_index: int | None) -> tuple[np.ndarray, str | None]:
    """One model input (from an image file, or test example ``test_index``) and its true label, if known."""
    shape = model_inputs(raw.arrays["x_train"][:1]).shape[1:]
    if image is not None:
        if raw.schema is not None or len(shape) != 3:
            raise UsageError(f"IMAGE={image}: {label} is not image data; use ROWS=file.csv or FROM_TEST=N")
        try:
            return prepare_image(image, shape), None
        except (OSError, ValueError) as exc:
            raise UsageError(f"IMAGE={image}: not a readable PNG/JPG image ({exc})") from None
    test_index = test_index or 0
    y_test = raw.arrays["y_test"]
    if not 0 <= test_index < len(y_test):
        raise UsageError(f"--from-test {test_index}: expected 0…{len(y_test) - 1}")
    truth = raw.class_names[y_test[test_index]] if raw.class_names else f"{y_test[test_index]:.4g}"
    return model_inputs(raw.arrays["x_test"][test_index:test_index + 1])[0], truth


def predict_rows(model: keras.Model, raw: RawData, rows: Path, out: Path) -> str:
    """Each row of the CSV ``rows`` with its prediction (class and probability, or number) appended, written to
    ``out``; what was written, in words."""
    if raw.schema is None:
        raise UsageError(f"ROWS={rows}: the space's data is not a table; use IMAGE=… or FROM_TEST=N")
    try:
        frame = read_frame(rows)
        x = raw.schema.encode(frame, str(rows))
    except DataError as exc:
        raise UsageError(str(exc)) from None
    predicted = model.predict(x, batch_size=1024, verbose=0)
    result = frame.copy()
    if raw.class_names:
        result[f"predicted_{raw.schema.target}"] = [raw.class_names[i] for i in predicted.argmax(axis=1)]
        result["probability"] = predicted.max(axis=1).round(4)
    else:
        result[f"predicted_{raw.schema.target}"] = predicted[:, 0]
    partial = out.with_name(f".{out.name}.partial")  # written whole, then renamed: never half a file
    try:
        result.to_csv(partial, index=False)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"--out {out}: cannot write the predictions ({exc.strerror})") from None
    return f"{len(result):,} rows predicted into {out}"


def prepare_image(path: Path, shape: tuple[int, ...] = GREY_28) -> np.ndarray:
    """Any PNG/JPG → a float image of ``shape`` (height, width, channels) like the training data. For the built-in
    28x28 grey data it is fitted as the seed note did (light background inverted to dark, padded to a square);
    other image data is resized as its folder's images were."""
    height, width, channels = shape
    image = ImageOps.exif_transpose(Image.open(path)).convert("L" if channels == 1 else "RGB")
    if tuple(shape) != GREY_28:
        resized = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
        return model_inputs(resized.reshape(1, height, width, channels))[0]
    pixels = np.asarray(image, dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 127:  # dark object on a light background: the datasets are light on black
        image = ImageOps.invert(image)
    image = ImageOps.pad(image, (28, 28), method=Image.Resampling.LANCZOS, color=0)
    return to_model_input(np.asarray(image))


def top_k(model: keras.Model, inputs: np.ndarray, class_names: tuple[str, ...], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one input, with their probabilities (a regression: its number)."""
    predicted = model.predict(inputs[np.newaxis], verbose=0)[0]
    if not class_names:
        return [(f"{predicted[0]:.4g}", float(predicted[0]))]
    order = np.argsort(-predicted)[:k]
    return [(class_names[i], float(predicted[i])) for i in order]
