"""Read and verify IDX files (the MNIST family's format), gzip-compressed or not."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from experiments.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_idx(path: Path) -> bytes:
    """Return the decompressed IDX bytes of ``path`` (``.gz`` or plain)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None


def parse_idx(blob: bytes, source: str, magic: int, count: int) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking the magic number and example count."""
    ndim = 3 if magic == IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise DataError(f"{source}: truncated IDX header ({len(blob)} bytes)")
    found = int.from_bytes(blob[:4], "big")
    if found != magic:
        raise DataError(f"{source}: wrong magic number 0x{found:08x}, expected 0x{magic:08x}")
    shape = tuple(int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape[0] != count:
        raise DataError(f"{source}: holds {shape[0]} examples, expected {count}")
    if ndim == 3 and shape[1:] != (28, 28):
        raise DataError(f"{source}: images are {shape[1]}x{shape[2]}, expected 28x28")
    size = int(np.prod(shape))
    if len(blob) - header != size:
        raise DataError(f"{source}: {len(blob) - header} data bytes, expected {size}")
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape)


def to_idx(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX bytes (the inverse of :func:`parse_idx`)."""
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return magic.to_bytes(4, "big") + dims + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
