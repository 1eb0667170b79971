"""A new MLflow SQLite store is a copy of a migrated empty one from the user's cache, the same as MLflow's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import alembic.command
import mlflow
import pytest
from mlflow import MlflowClient

from sweeps.store.new_sqlite import _place, seed_sqlite_store
from sweeps.store.tracking import Tracker


def _schema(path: Path) -> dict[str, object]:
    """Tables with their columns, indexes, and the schema's revision (MLflow's own migrations order a table's CHECK
    constraints differently from one run to the next, so its CREATE statement is not compared as text)."""
    with sqlite3.connect(path) as db:
        names = db.execute("SELECT type, name FROM sqlite_master ORDER BY type, name").fetchall()
        columns = {name: db.execute(f"PRAGMA table_info('{name}')").fetchall() for kind, name in names if kind == "table"}
        return {"objects": names, "columns": columns,
                "revision": db.execute("SELECT version_num FROM alembic_version").fetchall()}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWEEPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


def test_a_new_store_is_the_cached_copy_and_reads_as_mlflows_own(tmp_path: Path, cache: Path, monkeypatch):
    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'own.db'}").get_experiment_by_name("x")  # made by MLflow
    first = Tracker(f"sqlite:///{tmp_path / 'first.db'}", "study")  # makes the cache's copy, then copies it
    monkeypatch.setattr(alembic.command, "upgrade", lambda *a, **k: pytest.fail("a seeded store ran migrations"))
    second = Tracker(f"sqlite:///{tmp_path / 'second.db'}", "study")
    assert [p.name for p in cache.iterdir()] == [f"mlflow-{mlflow.__version__}-empty.db"]
    for made in ("first.db", "second.db"):
        assert _schema(tmp_path / made) == _schema(tmp_path / "own.db")
    own = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'own.db'}")
    own_study = own.create_experiment("study")
    for tracker in (first, second):
        # MLflow made the Default experiment where it opened the copy, not where the cache's was made.
        assert tracker.client.get_experiment("0").artifact_location == own.get_experiment("0").artifact_location
        assert tracker.experiment_id == own_study
    second.start_run("trial 0")
    assert len(second.runs()) == 1 and first.runs().empty


def test_a_store_that_exists_is_never_replaced_and_other_uris_are_left_alone(tmp_path: Path, cache: Path):
    existing = tmp_path / "mlflow.db"
    existing.write_bytes(b"not a database")
    seed_sqlite_store(f"sqlite:///{existing}")
    assert existing.read_bytes() == b"not a database"
    # Another process may create it between the check and the copy: the copy is linked in, which never overwrites.
    (tmp_path / "other.db").write_bytes(b"a copy")
    _place(tmp_path / "other.db", existing)
    assert existing.read_bytes() == b"not a database"
    (tmp_path / "other.db").unlink()
    for uri in ("http://127.0.0.1:5000", "sqlite:///:memory:", f"sqlite:///{tmp_path / 'no' / 'folder.db'}",
                f"sqlite:///{tmp_path / 'query.db'}?timeout=20"):
        seed_sqlite_store(uri)
    assert not cache.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_a_cache_that_cannot_be_written_leaves_the_creation_to_mlflow(tmp_path: Path, cache: Path):
    cache.write_text("a file where the folder should be")
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "study")
    assert tracker.experiment_id == "1" and tracker.client.get_experiment("0").name == "Default"
