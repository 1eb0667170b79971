"""Score a trained model on the test set: confusion, per-class accuracy, mistakes, robustness to small shifts; a
regression's errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.metrics import confusion_matrix, mean_absolute_error, r2_score, root_mean_squared_error

if TYPE_CHECKING:  # a trained model comes in; scoring it needs no TensorFlow import here
    import keras

Transform = Callable[[np.ndarray], np.ndarray]


def rotate(degrees: float) -> Transform:
    """Rotate a batch of (n, 28, 28, 1) images about their centre, keeping the size."""
    return lambda x: ndimage.rotate(x, degrees, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0)


def shift(pixels: int) -> Transform:
    """Shift a batch of images right and down by ``pixels``."""
    return lambda x: ndimage.shift(x, (0, pixels, pixels, 0), order=0, mode="constant", cval=0.0)


# The seed note's case for CNNs: a digit rotated 20° and shifted 3 px fools an MLP.
ORIGINAL = "original"
PERTURBATIONS: dict[str, Transform] = {
    ORIGINAL: lambda x: x,
    "rotated -10°": rotate(-10), "rotated +10°": rotate(10),
    "rotated -20°": rotate(-20), "rotated +20°": rotate(20),
    "shifted 2 px": shift(2), "shifted 3 px": shift(3),
    "rotated 20° + shifted 3 px": lambda x: shift(3)(rotate(20)(x)),
}


MOVE_DEGREES, MOVE_PIXELS = 20, 3  # the seed note's case, as the bounds of the moved validation copy


def moved_copy(x: np.ndarray, seed: int) -> np.ndarray:
    """Each image rotated by a seeded angle within ±20° and shifted by up to 3 px along each axis: the copy of
    the validation images that ``val_robust_accuracy`` is measured on (never the test set)."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-MOVE_DEGREES, MOVE_DEGREES, len(x))
    shifts = rng.integers(-MOVE_PIXELS, MOVE_PIXELS + 1, (len(x), 2))
    moved = np.empty_like(x)
    for i, (image, angle, (dy, dx)) in enumerate(zip(x, angles, shifts, strict=True)):
        turned = ndimage.rotate(image, angle, axes=(0, 1), reshape=False, order=1, mode="constant", cval=0.0)
        moved[i] = ndimage.shift(turned, (dy, dx, 0), order=0, mode="constant", cval=0.0)
    return moved


@dataclass
class TestScores:
    """Predictions of a model on a labelled image set, and what follows from them."""

    __test__ = False  # a name pytest would otherwise try to collect as a test class
    y_true: np.ndarray
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    rows: np.ndarray | None = None  # the test-set row of each prediction, for the mistakes (None: 0, 1, 2, ...)

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.y_pred == self.y_true).mean())

    def confusion(self) -> pd.DataFrame:
        """Counts, rows = true class, columns = predicted class."""
        matrix = confusion_matrix(self.y_true, self.y_pred, labels=range(len(self.class_names)))
        return pd.DataFrame(matrix, index=list(self.class_names), columns=list(self.class_names))

    def per_class_accuracy(self) -> pd.Series:
        """Recall of each class: the share of its images predicted right."""
        matrix = self.confusion().to_numpy()
        return pd.Series(matrix.diagonal() / matrix.sum(axis=1).clip(min=1), index=list(self.class_names))

    def mistakes(self, limit: int = 24) -> pd.DataFrame:
        """The most confident wrong predictions: index (the test-set row), true and predicted name, confidence."""
        wrong = np.flatnonzero(self.y_pred != self.y_true)
        confidence = self.probabilities[wrong, self.y_pred[wrong]]
        order = wrong[np.argsort(-confidence)][:limit]
        return pd.DataFrame({
            "index": order if self.rows is None else self.rows[order],
            "true": [self.class_names[i] for i in self.y_true[order]],
            "predicted": [self.class_names[i] for i in self.y_pred[order]],
            "confidence": self.probabilities[order, self.y_pred[order]],
        })


@dataclass
class RegressionScores:
    """Predictions of a regression model on a test set, and their errors."""

    y_true: np.ndarray
    y_pred: np.ndarray

    @property
    def mae(self) -> float:
        return float(mean_absolute_error(self.y_true, self.y_pred))

    @property
    def rmse(self) -> float:
        return float(root_mean_squared_error(self.y_true, self.y_pred))

    @property
    def r2(self) -> float:
        """The share of the target's variance the predictions explain (1: all; 0: no better than its mean)."""
        return float(r2_score(self.y_true, self.y_pred))


def score(model: keras.Model, x: np.ndarray, y: np.ndarray, class_names: tuple[str, ...]) -> TestScores:
    """Predict ``x`` in large batches and keep the probabilities."""
    return TestScores(y_true=y, probabilities=model.predict(x, batch_size=1024, verbose=0), class_names=class_names)


def robustness(model: keras.Model, moved: Mapping[str, np.ndarray], y: np.ndarray,
               as_they_are: np.ndarray) -> pd.DataFrame:
    """Accuracy on the images as they are (``as_they_are``: the model's probabilities on them, predicted already)
    and on those of ``moved`` (the name of each other of :data:`PERTURBATIONS` -> the images under it)."""
    accuracy = {ORIGINAL: TestScores(y_true=y, probabilities=as_they_are, class_names=()).accuracy}
    accuracy |= {name: score(model, images, y, ()).accuracy for name, images in moved.items()}
    return pd.DataFrame({"perturbation": list(accuracy), "accuracy": list(accuracy.values())})
