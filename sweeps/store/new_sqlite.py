"""A new MLflow SQLite store starts as a copy of an empty one already at MLflow's latest schema.

MLflow creates a SQLite store by running every schema migration since its first release (about 1.5 s of CPU here,
on every new project and every test's). The migrated empty database is made once per MLflow version in the user's
cache (``$SWEEPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/sweeps`` or ``~/.cache/sweeps``) and copied. It holds no
experiment: MLflow creates its Default experiment when it opens the copy, with an artifact location of this
process's, as it would have in a database of its own making. Anything unexpected (a read-only cache, a file system
without hard links) leaves the creation to MLflow, as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import mlflow

SQLITE = "sqlite:///"


def cache_dir() -> Path:
    """Where this user's copies are kept."""
    if given := os.environ.get("SWEEPS_CACHE_DIR"):
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sweeps"


def seed_sqlite_store(uri: str) -> None:
    """Create the SQLite file of the MLflow tracking ``uri`` as a copy of the migrated empty store when it does not
    exist yet; any other ``uri`` is left alone."""
    path = _new_sqlite_path(uri)
    if path is not None:
        with contextlib.suppress(Exception):  # only a shortcut: MLflow creates the store itself next, and names what is wrong
            _place(_empty_store(), path)


def _new_sqlite_path(uri: str) -> Path | None:
    if not uri.startswith(SQLITE) or "?" in uri or uri.endswith(":memory:"):
        return None
    path = Path(uri[len(SQLITE):])
    return None if path.exists() or not path.parent.is_dir() else path


def _empty_store() -> Path:
    """The cache's migrated empty store of this MLflow version, made first if it is not there."""
    cached = cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as work:
        made = Path(work) / "store.db"
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"{SQLITE}{made}", str(Path(work) / "artifacts"))
        store.engine.dispose()
        with sqlite3.connect(made) as db:  # MLflow makes its Default experiment again in each copy
            db.execute("DELETE FROM experiments")
        db.close()
        os.replace(made, cached)  # whole or not at all, whoever else is making one
    return cached


def _place(empty: Path, path: Path) -> None:
    """Copy ``empty`` to ``path`` unless another process created ``path`` first (a hard link never overwrites)."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".mlflow-new-") as work:
        copy = Path(work) / path.name
        shutil.copyfile(empty, copy)
        with contextlib.suppress(FileExistsError):
            os.link(copy, path)
