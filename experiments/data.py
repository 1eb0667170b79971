"""Datasets: find the real files offline, verify them, split off an honest validation set.

Resolution order for the raw files (the first place that has them wins; a place that has them
but corrupt is an error, never skipped):

1. ``$SWEEPS_DATA_DIR/<folder>/`` with the four canonical IDX gzip files,
2. the Keras cache (``$KERAS_HOME`` or ``~/.keras``) ``datasets/fashion-mnist/`` or ``datasets/mnist.npz``,
3. Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist/``),
4. the Keras download (needs the network).

Every file is checked by magic number, example count and the md5 of its decompressed IDX content
(the published checksums), so a re-gzipped copy is accepted and a different dataset is not.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.errors import DataError
from experiments.files import read_npz
from experiments.idx import IMAGES_MAGIC, LABELS_MAGIC, md5, parse_idx, read_idx, to_idx
from experiments.tables import TABLE_SUFFIXES, TEST_SPLIT_SEED, TableFront, TableSchema, read_table

DATA_DIR_ENV = "SWEEPS_DATA_DIR"
DEBIAN_DIR = Path("/usr/share/datasets")
VALIDATIONS = ("holdout", "stratified", "test")

# part -> (canonical file name, IDX magic, example count)
FILES = {
    "x_train": ("train-images-idx3-ubyte.gz", IMAGES_MAGIC, 60000),
    "y_train": ("train-labels-idx1-ubyte.gz", LABELS_MAGIC, 60000),
    "x_test": ("t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, 10000),
    "y_test": ("t10k-labels-idx1-ubyte.gz", LABELS_MAGIC, 10000),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: where it lives and how to recognise its files."""

    name: str
    folder: str
    class_names: tuple[str, ...]
    content_md5: dict[str, str]  # part -> md5 of the decompressed IDX file


DATASETS = {
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        folder="fashion-mnist",
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        content_md5={
            "x_train": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "y_train": "9018921c3c673c538a1fc5bad174d6f9",
            "x_test": "8181f5470baa50b63fa0f6fddb340f0a",
            "y_test": "15d484375f8d13e6eb1aabb0c3f46965",
        },
    ),
    "mnist": DatasetInfo(
        name="mnist",
        folder="mnist",
        class_names=tuple(str(d) for d in range(10)),
        content_md5={
            "x_train": "6bbc9ace898e44ae57da46a324031adb",
            "y_train": "a25bea736e30d166cdddb491f175f624",
            "x_test": "2646ac647ad5339dbf082846283269ea",
            "y_test": "27ae3e4e09519cfbb04c329615203637",
        },
    ),
}


@dataclass(frozen=True)
class RawData:
    """The verified arrays of a dataset (labels as class indices, or numbers for a regression), its class names
    (none for a regression) and where it came from."""

    arrays: dict[str, np.ndarray]  # x_train, y_train, x_test, y_test; x_val, y_val when the data gives them
    source: str
    md5: str  # one fingerprint of the verified files
    class_names: tuple[str, ...]
    schema: TableSchema | None = None  # a table's columns: how its rows become model inputs
    streamed: bool = False  # uint8 images memory-mapped from the image cache: trained on in streamed batches


@dataclass(frozen=True)
class UserData:
    """Data of the user's: a file or folder, and how to read it (see ``sweeps.space.schema.DataFile``)."""

    path: Path
    target: str | None = None
    test: Path | None = None
    test_size: float = 0.2
    image_size: tuple[int, int] | None = None
    color_mode: str | None = None
    regression: bool = False
    # Which file and which version of it (see :func:`file_version`): part of the key the loaded arrays are cached
    # under, so a file edited, or another project's file of the same relative name, is read afresh.
    version: tuple = ()

    @property
    def name(self) -> str:
        return self.path.name

    def __str__(self) -> str:
        return str(self.path)


DataSource = str | UserData  # a built-in dataset's name, or data of the user's


def file_version(*paths: Path | None) -> tuple:
    """What tells one version of data files from another: each one's absolute path, size and modification time (a
    folder's, and its class folders', whose times change when an image is added or removed)."""
    version: list = []
    for path in paths:
        if path is None or not path.exists():
            continue
        stats = [path, *sorted(p for p in path.iterdir() if p.is_dir())] if path.is_dir() else [path]
        version += [str(path.resolve()), *((s.st_size, s.st_mtime_ns) for s in (p.stat() for p in stats))]
    return tuple(version)


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
    streamed: bool = False  # x_* are stored uint8 images, scaled batch by batch (experiments.batches)
    target: TargetScale | None = None  # a regression's: the training part's target mean and spread

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


def _verify(info: DatasetInfo, blobs: dict[str, bytes], source: str) -> RawData:
    arrays = {}
    for part, (fname, magic, count) in FILES.items():
        where = f"{source}/{fname}" if not source.startswith("keras") else f"{source} [{part}]"
        arrays[part] = parse_idx(blobs[part], where, magic, count)
        if md5(blobs[part]) != info.content_md5[part]:
            raise DataError(f"{where}: md5 mismatch, this is not the original {info.name} {part} data")
    fingerprint = hashlib.md5("".join(info.content_md5[p] for p in FILES).encode()).hexdigest()
    return RawData(arrays=arrays, source=source, md5=fingerprint, class_names=info.class_names)


def _from_idx_dir(info: DatasetInfo, folder: Path) -> RawData | None:
    if not folder.is_dir():
        return None
    missing = [fname for fname, _, _ in FILES.values() if not (folder / fname).is_file()]
    if len(missing) == len(FILES):
        return None
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)} (a {info.name} folder needs all four IDX gzip files)")
    return _verify(info, {part: read_idx(folder / f) for part, (f, _, _) in FILES.items()}, str(folder))


def _from_arrays(info: DatasetInfo, arrays: tuple, source: str) -> RawData:
    (x_train, y_train), (x_test, y_test) = arrays
    parts = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _verify(info, {p: to_idx(np.asarray(a)) for p, a in parts.items()}, source)


def _from_keras_cache(info: DatasetInfo) -> RawData | None:
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    if info.name == "mnist":
        npz = cache / "mnist.npz"
        if not npz.is_file():
            return None
        with np.load(npz) as f:
            return _from_arrays(info, ((f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])), f"keras cache {npz}")
    return _from_idx_dir(info, cache / info.folder)


def _from_keras_download(info: DatasetInfo) -> RawData | None:
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        arrays = getattr(keras.datasets, info.name).load_data()
    except Exception:  # no network, proxy, HTTP error: all mean "not available here"
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return _from_arrays(info, arrays, "keras download")


@functools.cache
def load_raw(name: str, data_dir: str | None = None, download: bool = True) -> RawData:
    """Find, read and verify dataset ``name``; cached so each process reads the files once."""
    info = DATASETS[name]
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    tried = []
    if data_dir:
        tried.append(f"{DATA_DIR_ENV}={data_dir}/{info.folder}")
        if raw := _from_idx_dir(info, Path(data_dir) / info.folder):
            return raw
    tried.append("the Keras cache")
    if raw := _from_keras_cache(info):
        return raw
    if info.name == "fashion_mnist":
        tried.append(f"{DEBIAN_DIR / info.folder} (Debian dataset-fashion-mnist)")
        if raw := _from_idx_dir(info, DEBIAN_DIR / info.folder):
            return raw
    if download:
        tried.append("the Keras download")
        if raw := _from_keras_download(info):
            return raw
    raise DataError(
        f"dataset {name} not found (tried {'; '.join(tried)}): set {DATA_DIR_ENV} (make DATA_DIR=…) to a folder "
        f"holding {info.folder}/ with {', '.join(f for f, _, _ in FILES.values())}"
    )


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
        from experiments.folders import read_image_folder  # PIL: only for image folders

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
    ``stratified`` (a ``seed``-ed, class-balanced ``val_size`` sample of the training set) or ``test`` (the test
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
    # cache (which experiments.folders shuffled once), not copies of it.
    tail = isinstance(source, str) or raw.streamed
    (x_tr, y_tr), (x_val, y_val) = _split_validation(raw, validation, val_size, seed, tail)
    _warn_missing_classes(raw, y_tr, y_val)
    x_te, y_te = raw.arrays["x_test"], raw.arrays["y_test"]
    if subset is not None:
        share = subset / len(y_tr)
        x_tr, y_tr = _sample(x_tr, y_tr, subset, seed)
        x_val, y_val = _sample(x_val, y_val, max(1, round(share * len(y_val))), seed + 1)
        x_te, y_te = _sample(x_te, y_te, max(1, round(share * len(y_te))), seed + 2)
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
    )
