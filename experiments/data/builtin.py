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
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.data.fingerprint import fingerprint
from experiments.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx, to_idx
from experiments.data.raw import RawData
from experiments.errors import DataError

DATA_DIR_ENV = "SWEEPS_DATA_DIR"
DEBIAN_DIR = Path("/usr/share/datasets")

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


def _verify(info: DatasetInfo, blobs: dict[str, bytes], source: str) -> RawData:
    arrays = {}
    for part, (fname, magic, count) in FILES.items():
        where = f"{source}/{fname}" if not source.startswith("keras") else f"{source} [{part}]"
        arrays[part] = parse_idx(blobs[part], where, magic, count)
        if fingerprint([blobs[part]]) != info.content_md5[part]:
            raise DataError(f"{where}: md5 mismatch, this is not the original {info.name} {part} data")
    return RawData(arrays=arrays, source=source, md5=fingerprint(info.content_md5[p] for p in FILES),
                   class_names=info.class_names)


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
