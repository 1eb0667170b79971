"""Data as a sweep trains on it: the verified arrays of a built-in dataset or of data of the user's (an .npz, a
table, an image folder), split into training, validation and test parts, normalised, once per process."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import numpy as np

from experiments.data.builtin import DATASETS, load_raw
from experiments.data.files import read_npz
from experiments.data.raw import DataSource, RawData, UserData
from experiments.data.tables import TABLE_SUFFIXES, TEST_SPLIT_SEED, TableFront, read_table
from experiments.errors import DataError

VALIDATIONS = ("holdout", "stratified", "test", "kfold")  # kfold: experiments.data.folds splits per repeat


@dataclass(frozen=True)
class TargetScale:
    """A regression's target in the training part: its mean and standard deviation. The model's network learns
    the target standardised with them and its output is mapped back (``experiments.models.TargetUnits``)."""

    mean: float
    std: float

    @classmethod
    def fit(cls, y_train: np.ndarray) -> TargetScale:
        """The scale of the training part's targets (a constant target: a spread of 1, nothing to divide by 0)."""
        y = y_train.astype(np.float64)
        return cls(float(y.mean()), float(y.std()) or 1.0)


@dataclass(frozen=True)
class Dataset:
    """Normalised arrays ready for ``fit``: uint8 images as float32 in [0, 1] with a channel axis, other numbers
    as float32."""

    name: str
    class_names: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    validation: str
    source: str
    md5: str
    input_scale: float | None = 1 / 255  # what raw inputs were multiplied by (None: taken as they are)
    front: TableFront | None = None  # a table's standardisation and encoding, put in front of the model
    streamed: bool = False  # x_* are stored uint8 images, scaled batch by batch (experiments.data.batches)
    target: TargetScale | None = None  # a regression's: the training part's target mean and spread
    test_rows: np.ndarray | None = None  # the rows of the source's test set that x_test holds (None: all, in order)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one model input (without the batch axis)."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """How many classes (None: a regression)."""
        return len(self.class_names) or None

    @functools.cached_property
    def x_val_moved(self) -> np.ndarray:
        """The validation images rotated and shifted (the same seeded copy for every trial): see
        :func:`experiments.evaluate.moved_copy`."""
        from experiments.evaluate import moved_copy  # scipy: only for spaces that measure robustness

        return moved_copy(model_inputs(self.x_val) if self.streamed else self.x_val, seed=0)


@functools.cache
def raw_data(source: DataSource) -> RawData:
    """The verified arrays of a built-in dataset (by name) or of data of the user's (an .npz, a table, a folder)."""
    if isinstance(source, UserData):
        return _user_data(source)
    if source not in DATASETS:
        raise DataError(f"unknown dataset {source!r} (allowed: {', '.join(DATASETS)}, or {{path: FILE}})")
    return load_raw(source)


def _user_data(data: UserData) -> RawData:
    path = data.path
    if (data.image_size or data.color_mode) and not path.is_dir():
        raise DataError(f"{path}: dataset.image_size and color_mode are for a folder of images")
    if path.suffix in TABLE_SUFFIXES:
        arrays, names, digest, schema = read_table(path, data.target, data.test, data.test_size, data.regression)
        return RawData(arrays=arrays, source=str(path), md5=digest, class_names=names, schema=schema)
    if data.target is not None or data.test is not None:
        raise DataError(f"{path}: dataset.target and dataset.test are for a table (.csv, .parquet)")
    if path.suffix == ".npz":
        arrays, names, digest = read_npz(path, data.regression)
    elif path.is_dir():
        if data.regression:
            raise DataError(f"{path}: an image folder's sub-folders are classes; task: regression needs an .npz or a table")
        from experiments.data.folders import read_image_folder  # PIL: only for image folders

        arrays, names, digest = read_image_folder(path, data.image_size, data.color_mode, data.test_size)
        return RawData(arrays=arrays, source=str(path), md5=digest, class_names=names, streamed=True)
    elif not path.exists():
        raise DataError(f"{path}: not found (dataset.path: an .npz, a .csv or .parquet table, or an image folder)")
    else:
        raise DataError(f"{path}: expected an .npz, a .csv or .parquet table, or a folder of images")
    return RawData(arrays=arrays, source=str(path), md5=digest, class_names=names)


def input_shape(source: DataSource) -> tuple[int, ...]:
    """The shape of one model input (without the batch axis), from the data's files, without a split."""
    return tuple(model_inputs(raw_data(source).arrays["x_train"][:1]).shape[1:])


def builder_inputs(source: DataSource) -> tuple[tuple[int, ...], int | None]:
    """What a model builder is given for this data: the input shape of its network (a table's encoded features)
    and the class count (None: a regression)."""
    raw = raw_data(source)
    shape = (raw.schema.width,) if raw.schema else input_shape(source)
    return shape, len(raw.class_names) or None


def model_inputs(x: np.ndarray) -> np.ndarray:
    """Model inputs: uint8 images as float32 in [0, 1] with a channel axis (when they have none); other numbers
    as float32, as they are."""
    if x.dtype == np.uint8:
        return to_model_input(x) if x.ndim == 3 else x.astype(np.float32) / 255.0
    return x.astype(np.float32)


def _val_count(val_size: float, train_size: int) -> int:
    """``val_size`` as a count: a fraction of the training part below 1, else the count itself."""
    return max(1, round(val_size * train_size)) if val_size < 1 else int(val_size)


def _holdout_rows(y: np.ndarray, val_size: int, classes: bool) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows of a holdout of ``val_size`` rows that is a property of the file: seeded
    with TEST_SPLIT_SEED, not the sweep's seed, so every sweep of the file validates on the same rows; stratified
    by class where every class has rows enough, else (and for a regression) a plain shuffle."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    if classes:
        try:
            return train_test_split(rows, test_size=val_size, random_state=TEST_SPLIT_SEED, stratify=y)
        except ValueError:  # a class of one row, or fewer rows on a side than classes: nothing to stratify by
            pass
    return train_test_split(rows, test_size=val_size, random_state=TEST_SPLIT_SEED)


def _split_validation(raw: RawData, validation: str, val_size: float, seed: int, tail: bool):
    """Training and validation parts; ``tail``: a holdout is the last ``val_size`` rows as stored."""
    x, y = raw.arrays["x_train"], raw.arrays["y_train"]
    if validation == "kfold":
        _check_kfold(raw, tail)
        return (x, y), (x[:0], y[:0])  # every training row: each repeat holds a fold out (experiments.data.folds)
    if "x_val" in raw.arrays:  # the data gives its own validation part
        return (x, y), (raw.arrays["x_val"], raw.arrays["y_val"])
    val_size = _val_count(val_size, len(y))
    if val_size >= len(y):
        raise DataError(f"val_size {val_size} leaves no training examples of {len(y)} in {raw.source}")
    if validation == "test":
        return (x, y), (x[:0], y[:0])  # filled with the test set once it is final
    if validation == "holdout" and tail:
        return (x[:-val_size], y[:-val_size]), (x[-val_size:], y[-val_size:])
    if validation == "holdout":
        train, val = _holdout_rows(y, val_size, bool(raw.class_names))
        return (x[train], y[train]), (x[val], y[val])
    from sklearn.model_selection import train_test_split

    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=val_size, random_state=seed,
                                                stratify=y if raw.class_names else None)
    return (x_tr, y_tr), (x_val, y_val)


def _check_kfold(raw: RawData, built_in_or_images: bool) -> None:
    """k-fold splits rows held in memory: not a built-in dataset (its documented holdout) or stored images, nor
    data that brings its own validation part."""
    if built_in_or_images:
        raise DataError(f"validation: kfold is for a table or an .npz of yours, not {raw.source}")
    if "x_val" in raw.arrays:
        raise DataError(f"validation: kfold: {raw.source} has its own x_val/y_val; kfold folds the training rows "
                        "(merge them into x_train, or use validation: holdout)")


def _warn_missing_classes(raw: RawData, y_train: np.ndarray, y_val: np.ndarray) -> None:
    """One line on stderr when the validation part lacks classes the training part has: selection is blind to them."""
    if not raw.class_names or not len(y_val):  # a regression, or a validation part still to come (the test set)
        return
    missing = np.setdiff1d(y_train, y_val)
    if len(missing):
        names = ", ".join(repr(raw.class_names[i]) for i in missing[:5]) + (", …" if len(missing) > 5 else "")
        print(f"warning: {raw.source}: the validation part has no example of class {names}, which the training "
              "part has: validation scores leave them out", file=sys.stderr)


def _sample(x: np.ndarray, y: np.ndarray, n: int | None, seed: int):
    """A seeded sample of ``n`` examples with the classes in their proportions (all of them when n is None or
    too big; a plain random sample when n is smaller than the number of classes)."""
    if n is None or n >= len(y):
        return x, y
    from sklearn.model_selection import train_test_split  # scikit-learn's import: only when sampling

    stratified = y.dtype.kind in "iu" and n >= len(np.unique(y))  # a regression's numbers have no classes to keep
    keep, _ = train_test_split(np.arange(len(y)), train_size=n, random_state=seed, stratify=y if stratified else None)
    keep = np.sort(keep)
    return x[keep], y[keep]


def to_model_input(x: np.ndarray) -> np.ndarray:
    """28×28 uint8 images (any leading shape) as the models take them: float32 in [0, 1] with a channel axis."""
    return (np.asarray(x).astype(np.float32) / 255.0)[..., np.newaxis]


@functools.lru_cache(maxsize=4)
def load_dataset(
    source: DataSource,
    validation: str = "holdout",
    val_size: float = 10000,
    seed: int = 0,
    subset: int | None = None,
) -> Dataset:
    """Load ``source`` (a built-in name or a data file) split into train / validation / test, normalised, once
    per process.

    ``validation``: ``holdout`` (``val_size`` training examples, the same ones whatever ``seed``: a built-in
    dataset's last ones, as documented; an image folder's last ones in its cache, shuffled once (seeded); of other
    data of the user's a shuffle seeded for the file, stratified by class where every class has rows enough),
    ``stratified`` (a ``seed``-ed, class-balanced ``val_size`` sample of the training set), ``kfold`` (every
    training row in the training part and none held out: :func:`experiments.data.folds.fold_part` makes each
    fold's parts) or ``test`` (the test
    set, as the blog did: selection and scoring on the same images); a data file's own ``x_val``/``y_val`` win.
    ``val_size`` below 1 is a fraction of the training part. ``subset`` keeps a seeded sample of that many training
    examples and a proportional share of validation and test examples (smoke runs, tests). A validation part
    without a class of the training part is one warning line on stderr. A regression carries its training part's
    target mean and spread (``target``), which its model's output is scaled by.
    """
    if validation not in VALIDATIONS:
        raise DataError(f"unknown validation {validation!r} (allowed: {', '.join(VALIDATIONS)})")
    raw = raw_data(source)
    # A built-in dataset keeps its documented holdout; stored images stay on disk, their parts slices of the mapped
    # cache (which experiments.data.folders shuffled once), not copies of it.
    tail = isinstance(source, str) or raw.streamed
    (x_tr, y_tr), (x_val, y_val) = _split_validation(raw, validation, val_size, seed, tail)
    _warn_missing_classes(raw, y_tr, y_val)
    x_te, y_te = raw.arrays["x_test"], raw.arrays["y_test"]
    test_rows = None
    if subset is not None:
        share = subset / len(y_tr)
        x_tr, y_tr = _sample(x_tr, y_tr, subset, seed)
        x_val, y_val = _sample(x_val, y_val, max(1, round(share * len(y_val))), seed + 1)
        rows, y_te = _sample(np.arange(len(y_te)), y_te, max(1, round(share * len(y_te))), seed + 2)
        if len(rows) < len(x_te):  # a sample, not all (stored images stay on disk, not copied whole)
            x_te, test_rows = x_te[rows], rows
    if validation == "test" and "x_val" not in raw.arrays:
        x_val, y_val = x_te, y_te
    labels = np.int64 if raw.class_names else np.float32
    inputs = (lambda x: x) if raw.streamed else model_inputs  # stored images stay as they are, scaled per batch
    return Dataset(
        name=source if isinstance(source, str) else source.name, class_names=raw.class_names,
        x_train=inputs(x_tr), y_train=y_tr.astype(labels),
        x_val=inputs(x_val), y_val=y_val.astype(labels),
        x_test=inputs(x_te), y_test=y_te.astype(labels),
        validation="given" if "x_val" in raw.arrays else validation, source=raw.source, md5=raw.md5,
        input_scale=1 / 255 if raw.arrays["x_train"].dtype == np.uint8 else None,
        front=TableFront.fit(raw.schema, x_tr) if raw.schema else None,  # the training part's statistics only
        streamed=raw.streamed,
        target=None if raw.class_names else TargetScale.fit(y_tr),  # the training part's, as the front's
        test_rows=test_rows,
    )
