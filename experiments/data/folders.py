"""A user's folder of images, one sub-folder per class (inside ``train/`` and ``test/``, or split here), as uint8
arrays of one size and colour mode. Every mistake is a DataError naming the folder (or file) and what is wrong.

The images are decoded once into a uint8 ``.npy`` file in the project's cache (named by the folder's content
digest, the split, the size and colour), which every later read — each worker process, each sweep — opens memory-mapped: training
streams batches from it (``experiments.data.batches``) instead of holding the folder in memory, and nothing is decoded
twice."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.data.fingerprint import fingerprint
from experiments.data.tables import TEST_SPLIT_SEED
from experiments.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGE_CACHE = Path(".sweeps") / "cache" / "images"  # in the project folder (the working directory)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class ImageFile:
    """One image: where it is and its class index."""

    path: Path
    label: int


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
        found += [ImageFile(p, class_names.index(sub.name)) for p in paths]
    return found


def _mode_and_size(files: list[ImageFile], color_mode: str | None, image_size: tuple[int, int] | None,
                   where: Path) -> tuple[str, tuple[int, int]]:
    """PIL's mode to decode into (the space's colour mode, else grey when every image is grey) and the (height,
    width) of every image (the space's image_size, else the one size all images have), from the files' headers."""
    grey = True
    sizes: dict[tuple[int, int], Path] = {}
    if color_mode is None or image_size is None:
        for f in files:
            try:
                with Image.open(f.path) as image:  # lazily: the header is read, the pixels are not
                    grey, (width, height) = grey and image.mode in GREY_MODES, image.size
            except OSError as exc:
                raise DataError(f"{f.path}: not a readable image ({exc})") from None
            sizes.setdefault((height, width), f.path)
            if image_size is None and len(sizes) > 1:
                (a, first), (b, second) = sizes.items()
                raise DataError(f"{where}: images of mixed sizes ({a[0]}x{a[1]} {first.name}, {b[0]}x{b[1]} "
                                f"{second.name}); set dataset.image_size: [height, width]")
    mode = ("L" if grey else "RGB") if color_mode is None else ("L" if color_mode == "grayscale" else "RGB")
    return mode, image_size or next(iter(sizes))


def _decode_into(pixels: np.ndarray, files: list[ImageFile], mode: str, size: tuple[int, int]) -> None:
    """Decode ``files`` into the rows of ``pixels`` (uint8, n x height x width x channels)."""
    for i, f in enumerate(files):
        try:
            with Image.open(f.path) as opened:
                image = opened.convert(mode)
        except OSError as exc:
            raise DataError(f"{f.path}: not a readable image ({exc})") from None
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels[i] = np.asarray(image).reshape(pixels.shape[1:])


def _cached_pixels(files: list[ImageFile], image_size: tuple[int, int] | None, color_mode: str | None, path: Path,
                   where: Path) -> np.ndarray:
    """The decoded images in ``files``' order, memory-mapped from the cache file ``path`` (decoded into it on first
    use; written to a private file and renamed, so workers starting together never read half a file)."""
    if not path.is_file():
        mode, size = _mode_and_size(files, color_mode, image_size, where)
        shape = (len(files), size[0], size[1], 1 if mode == "L" else 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            pixels = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
            _decode_into(pixels, files, mode, size)
            pixels.flush()
            del pixels
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


def _digest(files: list[ImageFile], root: Path, cache: Path) -> str:
    """An md5 of the folder's content: every image's path (relative to the folder) and bytes. Remembered in the
    cache under a fingerprint of every file's path, size and modification time, so a worker starting on an
    unchanged folder lists it instead of reading every byte again."""
    stats = ((f.path.relative_to(root), f.path.stat()) for f in files)
    listing = fingerprint(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n" for name, stat in stats)
    memo = cache / f"{listing}.digest"
    if memo.is_file():
        return memo.read_text().strip()
    content = fingerprint(str(f.path.relative_to(root)).encode() + b"\0" + f.path.read_bytes() for f in files)
    cache.mkdir(parents=True, exist_ok=True)
    partial = memo.with_name(f".{memo.name}.{os.getpid()}")
    partial.write_text(content)
    os.replace(partial, memo)
    return content


def read_image_folder(root: Path, image_size: tuple[int, int] | None, color_mode: str | None, test_size: float,
                      cache: Path = IMAGE_CACHE) -> tuple[dict[str, np.ndarray], tuple[str, ...], str]:
    """The images of ``root`` (x_train, y_train, x_test, y_test: uint8 images memory-mapped from the cache, class
    indices), the class names (the sub-folders), and a digest of the folder's content."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    train_dir = root / "train" if split else root
    class_names = [p.name for p in _classes(train_dir)]
    train = _files(train_dir, class_names, root)
    test = _files(root / "test", class_names, root) if split else []
    labels = np.array([f.label for f in train + test], dtype=np.int64)
    # Files come class by class; the training part is shuffled once (seeded) so that a holdout validation split,
    # its last examples, is not one class.
    if split:
        keep, held = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(train)), np.arange(len(train), len(labels))
    else:
        from sklearn.model_selection import train_test_split

        try:
            keep, held = train_test_split(np.arange(len(labels)), test_size=test_size, stratify=labels,
                                          random_state=TEST_SPLIT_SEED)
        except ValueError as exc:
            raise DataError(f"{root}: cannot hold out test_size {test_size} of {len(labels)} images, each class in both parts ({exc})") from None
    everything = train + test
    ordered = [everything[i] for i in np.concatenate([keep, held])]  # cached as read: training part, then test
    digest = _digest(everything, root, cache)
    # The cache file is named by everything its pixels follow from: the content, the split, the size and colour asked.
    held_out = "given" if split else f"{test_size}-{TEST_SPLIT_SEED}"
    asked = f"{'x'.join(map(str, image_size)) if image_size else 'native'}-{color_mode or 'auto'}"
    pixels = _cached_pixels(ordered, image_size, color_mode, cache / f"{digest}-{held_out}-{asked}.npy", root)
    arrays = {"x_train": pixels[:len(keep)], "y_train": labels[keep], "x_test": pixels[len(keep):], "y_test": labels[held]}
    return arrays, tuple(class_names), digest
