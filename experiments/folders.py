"""A user's folder of images, one sub-folder per class (inside ``train/`` and ``test/``, or split here), as uint8
arrays of one size and colour mode. Every mistake is a DataError naming the folder (or file) and what is wrong."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.errors import DataError
from experiments.tables import TEST_SPLIT_SEED

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class ImageFile:
    """One image: where it is, its class index, its bytes."""

    path: Path
    label: int
    blob: bytes


def _classes(folder: Path) -> list[Path]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{folder}: an image folder needs one sub-folder per class, two or more (found "
                        f"{len(classes)})")
    return classes


def _files(folder: Path, class_names: list[str], where: Path) -> list[ImageFile]:
    """Every image of ``folder``'s class sub-folders, labelled by their index in ``class_names``."""
    found = []
    for sub in _classes(folder):
        if sub.name not in class_names:
            raise DataError(f"{sub}: class {sub.name!r} is not among the training classes ({', '.join(class_names)})")
        paths = sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise DataError(f"{sub}: no images ({', '.join(IMAGE_SUFFIXES)})")
        found += [ImageFile(p, class_names.index(sub.name), p.read_bytes()) for p in paths]
    return found


def _mode(files: list[ImageFile], color_mode: str | None) -> str:
    """PIL's mode to decode into: the space's colour mode, else grey when every image is grey."""
    if color_mode is not None:
        return "L" if color_mode == "grayscale" else "RGB"
    grey = all(Image.open(io.BytesIO(f.blob)).mode in GREY_MODES for f in files)
    return "L" if grey else "RGB"


def _size(files: list[ImageFile], image_size: tuple[int, int] | None, where: Path) -> tuple[int, int]:
    """(height, width) of every image: the space's image_size, else the one size all images have."""
    if image_size is not None:
        return image_size
    sizes: dict[tuple[int, int], Path] = {}
    for f in files:
        width, height = Image.open(io.BytesIO(f.blob)).size
        sizes.setdefault((height, width), f.path)
        if len(sizes) > 1:
            (a, first), (b, second) = sizes.items()
            raise DataError(f"{where}: images of mixed sizes ({a[0]}x{a[1]} {first.name}, {b[0]}x{b[1]} {second.name}); "
                            "set dataset.image_size: [height, width]")
    return next(iter(sizes))


def _decode(files: list[ImageFile], mode: str, size: tuple[int, int]) -> np.ndarray:
    channels = 1 if mode == "L" else 3
    pixels = np.empty((len(files), size[0], size[1], channels), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            image = Image.open(io.BytesIO(f.blob)).convert(mode)
        except OSError as exc:
            raise DataError(f"{f.path}: not a readable image ({exc})") from None
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels[i] = np.asarray(image).reshape(size[0], size[1], channels)
    return pixels


def _digest(files: list[ImageFile], root: Path) -> str:
    """An md5 of the folder's content: every image's path (relative to the folder) and bytes."""
    md5 = hashlib.md5()
    for f in files:
        md5.update(str(f.path.relative_to(root)).encode() + b"\0" + f.blob)
    return md5.hexdigest()


def read_image_folder(root: Path, image_size: tuple[int, int] | None, color_mode: str | None, test_size: float):
    """The images of ``root`` as arrays (x_train, y_train, x_test, y_test: uint8 images, class indices), the class
    names (the sub-folders), and a digest of the folder's content."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    train_dir = root / "train" if split else root
    class_names = [p.name for p in _classes(train_dir)]
    train = _files(train_dir, class_names, root)
    test = _files(root / "test", class_names, root) if split else []
    everything = train + test
    mode, size = _mode(everything, color_mode), _size(everything, image_size, root)
    x, y = _decode(everything, mode, size), np.array([f.label for f in everything], dtype=np.int64)
    # Files come class by class; the training part is shuffled once (seeded) so that a holdout validation split,
    # its last examples, is not one class.
    if split:
        keep, held = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(train)), np.arange(len(train), len(y))
    else:
        from sklearn.model_selection import train_test_split

        try:
            keep, held = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=TEST_SPLIT_SEED)
        except ValueError as exc:
            raise DataError(f"{root}: cannot hold out test_size {test_size} of {len(y)} images per class ({exc})") from None
    arrays = {"x_train": x[keep], "y_train": y[keep], "x_test": x[held], "y_test": y[held]}
    return arrays, tuple(class_names), _digest(everything, root)
