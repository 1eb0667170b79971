"""A user's own ``.npz`` of arrays (``x_train``, ``y_train``, ``x_test``, ``y_test``; ``x_val``, ``y_val``
optional), and class labels of any data of the user's: labels (integers or strings) become class indices, their
names kept; every mistake is a DataError naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.data.fingerprint import fingerprint
from experiments.errors import DataError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")


def read_npz(path: Path, regression: bool = False) -> tuple[dict[str, np.ndarray], tuple[str, ...], str]:
    """The arrays of ``path`` with labels as class indices (a regression's as float32), the class names (none for
    a regression), and the md5 of the file."""
    try:
        blob = path.read_bytes()
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name in REQUIRED + OPTIONAL}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:  # not a zip of .npy arrays, or arrays of Python objects
        raise DataError(f"{path}: not a readable .npz of arrays ({exc})") from None
    missing = [name for name in REQUIRED if name not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)} (an .npz needs {', '.join(REQUIRED)}; x_val and y_val "
                        "together, if at all)")
    for part in ("train", "val", "test"):
        if f"x_{part}" in arrays:
            _check_part(path, part, arrays[f"x_{part}"], arrays[f"y_{part}"])
    digest = fingerprint([blob])
    if regression:
        return {k: v.astype(np.float32) if k.startswith("y_") else v for k, v in arrays.items()}, (), digest
    class_names, labels = class_indices(str(path), arrays)
    arrays.update(labels)
    return arrays, class_names, digest


def _check_part(path: Path, part: str, x: np.ndarray, y: np.ndarray) -> None:
    if y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{path}: y_{part} must be one label per row of x_{part} (shapes {x.shape} and {y.shape})")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: x_{part} must be numbers (got {x.dtype})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{path}: x_{part} has NaN or infinite values")


def class_indices(where: str, arrays: dict[str, np.ndarray]) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Class names (sorted labels of the training part) and every part's labels (y_train, y_val, y_test) as
    indices into them."""
    if arrays["y_train"].dtype.kind == "f" and not np.array_equal(arrays["y_train"], np.round(arrays["y_train"])):
        raise DataError(f"{where}: y_train has fractional values; for a number to predict set task: regression")
    names = np.unique(arrays["y_train"])
    if len(names) < 2:
        raise DataError(f"{where}: y_train has one class only ({names[0]!r}); a classifier needs two or more")
    labels: dict[str, np.ndarray] = {}
    for key in ("y_train", "y_val", "y_test"):
        if key not in arrays:
            continue
        unseen = np.setdiff1d(arrays[key], names)
        if len(unseen):
            raise DataError(f"{where}: {key} has labels not in y_train: {', '.join(map(str, unseen[:5]))}")
        labels[key] = np.searchsorted(names, arrays[key]).astype(np.int64)
    return tuple(str(n) for n in names), labels
