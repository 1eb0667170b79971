"""The data of a sweep, sent once to a cluster's nodes through Ray's object store (no shared file system needed)
and checked against its digest on arrival, before any worker trains on it.

A built-in dataset goes as its IDX files (from ``$SWEEPS_DATA_DIR``; without it each node finds the data itself, as
on one machine) and lands in a node's temporary folder named by its digest; data of the user's goes as its files
and lands at the same place in the node's copy of the project folder, where the space file's relative path finds
it. Nothing here imports TensorFlow or Ray.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from experiments.data.builtin import DATA_DIR_ENV, DATASETS, FILES
from experiments.data.fingerprint import fingerprint
from sweeps.errors import ClusterError, UsageError
from sweeps.space.space import Space


@dataclass(frozen=True)
class DataBundle:
    """Files by their path relative to where they land, and the md5 of each as the sender read them."""

    files: dict[str, bytes]
    md5s: dict[str, str]
    built_in: bool  # lands in a folder of its own ($SWEEPS_DATA_DIR), else in the project folder
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        listing = "\n".join(f"{name} {md5}" for name, md5 in sorted(self.md5s.items()))
        object.__setattr__(self, "digest", fingerprint([listing]))

    @property
    def size(self) -> int:
        return sum(len(blob) for blob in self.files.values())


def _bundle(files: dict[str, Path], built_in: bool) -> DataBundle:
    blobs = {name: path.read_bytes() for name, path in files.items()}
    return DataBundle(blobs, {name: fingerprint([blob]) for name, blob in blobs.items()}, built_in)


def data_files(space: Space, root: Path) -> tuple[dict[str, Path], bool] | None:
    """What to send of ``space``'s data: files by where they land, and whether they are a built-in dataset's;
    None when each node finds the data itself (a built-in dataset without ``$SWEEPS_DATA_DIR``)."""
    data = space.data
    if isinstance(data, str):
        folder = os.environ.get(DATA_DIR_ENV)
        if not folder:
            return None
        sub = DATASETS[data].folder
        return {f"{sub}/{name}": Path(folder) / sub / name for name, _, _ in FILES.values()}, True
    files: dict[str, Path] = {}
    for given in (data.path, data.test):
        if given is None:
            continue
        path = (root / given).resolve()
        if not path.is_relative_to(root.resolve()):
            raise UsageError(f"dataset path {given}: outside the project folder {root}; on a cluster the data must be "
                             "in the project folder (it is sent to every node from there)")
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files.update({str(p.relative_to(root.resolve())): p for p in found})
    return files, False


def pack(space: Space, root: Path) -> DataBundle | None:
    """The bundle of ``space``'s data to put in the object store once (None: nothing to send)."""
    found = data_files(space, root)
    return _bundle(*found) if found else None


def _write_whole(path: Path, blob: bytes) -> None:
    """Write ``path`` through a private file renamed into place: workers of one node unpacking at once never see
    half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(blob)
    os.replace(partial, path)


def unpack(bundle: DataBundle, project: Path) -> dict[str, str]:
    """Check every file against its md5 and write it where it lands on this node (files already there with the
    same content are kept); the environment a worker needs to find it."""
    damaged = [name for name, blob in bundle.files.items() if fingerprint([blob]) != bundle.md5s[name]]
    if damaged:
        raise ClusterError(f"the data arrived damaged on this node ({len(damaged)} files differ from their md5, e.g. "
                           f"{damaged[0]}); nothing was trained on it")
    base = Path(tempfile.gettempdir()) / "sweeps-data" / bundle.digest if bundle.built_in else project
    for name, blob in bundle.files.items():
        target = base / name
        if not (target.is_file() and fingerprint([target.read_bytes()]) == bundle.md5s[name]):
            _write_whole(target, blob)
    return {DATA_DIR_ENV: str(base)} if bundle.built_in else {}
