"""Data before it is split: the verified arrays of a dataset and where they came from (:class:`RawData`), and data of
the user's as a space names it (:class:`UserData`, with the version of its files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.data.tables import TableSchema


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

    @property
    def numbered_classes(self) -> int:
        """How many classes a table's target has when there are more than 20 and every one is a whole number (a
        number to predict, perhaps, left as classes for want of ``task: regression``); else 0."""
        many = self.schema is not None and len(self.class_names) > 20
        return len(self.class_names) if many and all(_whole(name) for name in self.class_names) else 0


def _whole(name: str) -> bool:
    try:
        return float(name).is_integer()
    except ValueError:
        return False


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
