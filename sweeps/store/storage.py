"""Where studies and runs live: open the Optuna storage, check the MLflow store, before any training starts.

One machine (default): an Optuna journal file, ``optuna.journal`` beside ``mlflow.db`` — Optuna's storage for several
processes on one machine (SQLite is not safe with concurrent writers). Many machines: an RDB URL
(PostgreSQL) with heartbeats, so a dead worker's trial is failed and retried by the others.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from sweeps.errors import StoreError, UsageError, one_line

SQLITE_WAIT_S = 10.0  # how long a locked MLflow SQLite store is waited for before giving up




@dataclass(frozen=True)
class StaleTrials:
    """What an RDB storage that runs trials does with a RUNNING trial silent for ``grace_s``: Optuna fails it and
    calls ``callback(study, trial)`` (the retry policy is the search's, given here, not known to the store)."""

    grace_s: int
    callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


JOURNAL = "optuna.journal"  # in the project folder, beside mlflow.db: results, apart from the caches in .sweeps/
OLD_JOURNAL = Path(".sweeps") / JOURNAL  # where studies were kept before; used while no new journal exists


def default_storage(root: Path) -> str:
    """The local journal file: ``optuna.journal`` in ``root`` (``.sweeps/optuna.journal`` for a project that
    keeps its studies there from before; moving it up to the project folder is the user's call)."""
    old = root / OLD_JOURNAL
    if old.is_file() and not (root / JOURNAL).exists():
        return str(old.resolve())
    return str((root / JOURNAL).resolve())


def masked(url: str) -> str:
    """``url`` with any password replaced by ***, safe to print and log."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


JOURNAL_SUFFIXES = (".journal", ".log")


def is_journal(url: str) -> bool:
    return "://" not in url and url.endswith(JOURNAL_SUFFIXES)


def mend_cut_journal(path: Path) -> int:
    """End the journal at its last whole line when a crash or power loss cut the last write short; returns the
    number of bytes cut. Optuna would append the next record to the cut line and then refuse the whole file.
    The cut bytes (a record never completed, so never acted on) are kept in ``<journal>.cut-<time>``."""
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
    lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's writers take
    lock.acquire()
    try:
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        aside = path.with_name(f"{path.name}.cut-{time.strftime('%Y%m%d-%H%M%S')}")
        aside.write_bytes(data[keep:])
        with open(path, "r+b") as f:
            f.truncate(keep)
            os.fsync(f.fileno())
    finally:
        lock.release()
    print(f"note: {path}: its last record was cut short (a crash while writing); moved its {len(data) - keep} "
          f"bytes to {aside.name} — every finished trial is intact", file=sys.stderr)
    return len(data) - keep


def _check_sqlite(uri: str, path: Path) -> None:
    if not path.is_file():
        return  # MLflow creates it
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_WAIT_S)) as db:
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.OperationalError as exc:  # "database is locked"
        raise StoreError(f"MLFLOW_TRACKING_URI={uri}: the MLflow store cannot be read ({exc}); is another "
                         "program holding it? Finished trials are saved: run the same command again") from None
    except sqlite3.DatabaseError as exc:  # "file is not a database"
        verdict = str(exc)
    if verdict != "ok":
        raise StoreError(f"MLFLOW_TRACKING_URI={uri}: the MLflow store is damaged ({verdict}); keep a copy, then "
                         "restore it from a backup or point MLFLOW_TRACKING_URI at a new store")


def _heartbeat_s() -> int:
    """A running trial's pulse on a database storage ($SWEEPS_HEARTBEAT_S, read when the storage opens: a worker
    forked from a template imported this module under another environment)."""
    return int(os.environ.get("SWEEPS_HEARTBEAT_S", "20"))


def open_storage(url: str, stale: StaleTrials | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: a journal file path, or a database URL (checked by connecting). A process that
    runs trials gives ``stale``: a database storage then beats for its trials and fails (and hands to
    ``stale.callback``) the trials of workers silent for ``stale.grace_s``; a reader's storage does neither."""
    if "://" not in url and not is_journal(url):
        raise UsageError(f"STORAGE={url}: not a database URL (e.g. postgresql://user:pass@host/db) "
                         f"nor a journal file (a path ending in {' or '.join(JOURNAL_SUFFIXES)})")
    if is_journal(url):
        path = Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            mend_cut_journal(path)
            return JournalStorage(JournalFileBackend(str(path)))  # reads the whole journal
        except OSError as exc:
            raise StoreError(f"STORAGE={url}: cannot open the journal file ({exc.strerror})") from None
        except ValueError as exc:  # a line in the middle is not a JSON record: not something to guess about
            raise StoreError(f"STORAGE={url}: the journal file is damaged ({exc}); keep a copy, then remove the "
                             "damaged lines by hand (each line is one JSON record) or start a new STORAGE") from None
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},  # a restarted database costs a reconnect, not the sweep
                heartbeat_interval=_heartbeat_s() if stale else None,
                grace_period=stale.grace_s if stale else None,
                heartbeat_stale_trial_callback=stale.callback if stale else None,
            )
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(f"STORAGE={masked(url)}: not a database URL (e.g. postgresql://user:pass@host/db, "
                         "sqlite:///file.db) nor a journal file (path/to/file.journal)") from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        raise StoreError(f"STORAGE={masked(url)}: cannot connect ({one_line(exc.orig or exc)})") from None
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise UsageError(f"STORAGE={masked(url)}: no driver for it ({exc})") from None


def check_tracking(uri: str) -> None:
    """Fail fast (one line) when an MLflow tracking server does not answer, or a local SQLite store is damaged
    or held locked by another process."""
    if uri.startswith("sqlite:///"):
        _check_sqlite(uri, Path(uri.removeprefix("sqlite:///")))
        return
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10) as response:
            reason = "" if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    if reason:
        raise StoreError(f"MLFLOW_TRACKING_URI={masked(uri)}: MLflow server not reachable ({reason})")
    _check_credentials(uri)


def _check_credentials(uri: str) -> None:
    """A server that requires credentials (MLflow's basic-auth app) refuses a client without the right ones."""
    try:
        MlflowClient(tracking_uri=uri).get_experiment_by_name("Default")  # a read every user may do
    except MlflowException as exc:
        if re.search(r"\b(401|403)\b", str(exc)) or exc.error_code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            given = "with" if os.environ.get("MLFLOW_TRACKING_USERNAME") else "without"
            raise UsageError(f"MLFLOW_TRACKING_URI={masked(uri)}: the MLflow server refused this client ({given} "
                             "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD): check them") from None
        raise
