"""Where studies and runs live: open the Optuna storage, check the MLflow store, before any training starts.

One machine (default): an Optuna journal file, ``.sweeps/optuna.journal`` — Optuna's storage for several
processes on one machine (SQLite is not safe with concurrent writers). Many machines: an RDB URL
(PostgreSQL) with heartbeats, so a dead worker's trial is failed and retried by the others.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from sweeps.errors import UsageError
from sweeps.store.recovery import RETRY

HEARTBEAT_S = int(os.environ.get("SWEEPS_HEARTBEAT_S", "20"))  # RDB storages: a running trial's pulse
GRACE_S = int(os.environ.get("SWEEPS_GRACE_S", "60"))  # silent this long: its worker is dead, retry the trial


def default_storage(root: Path) -> str:
    """The local journal file."""
    return str((root / ".sweeps" / "optuna.journal").resolve())


def masked(url: str) -> str:
    """``url`` with any password replaced by ***, safe to print and log."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


JOURNAL_SUFFIXES = (".journal", ".log")


def is_journal(url: str) -> bool:
    return "://" not in url and url.endswith(JOURNAL_SUFFIXES)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: a journal file path, or a database URL (checked by connecting)."""
    if "://" not in url and not is_journal(url):
        raise UsageError(f"STORAGE={url}: not a database URL (e.g. postgresql://user:pass@host/db) "
                         f"nor a journal file (a path ending in {' or '.join(JOURNAL_SUFFIXES)})")
    if is_journal(url):
        path = Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise UsageError(f"STORAGE={url}: cannot open the journal file ({exc.strerror})") from None
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},  # a restarted database costs a reconnect, not the sweep
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=RETRY,
            )
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(f"STORAGE={masked(url)}: not a database URL (e.g. postgresql://user:pass@host/db, "
                         "sqlite:///file.db) nor a journal file (path/to/file.journal)") from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise UsageError(f"STORAGE={masked(url)}: cannot connect ({reason})") from None
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise UsageError(f"STORAGE={masked(url)}: no driver for it ({exc})") from None


def check_tracking(uri: str) -> None:
    """Fail fast (one line) when an MLflow tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise UsageError(f"MLFLOW_TRACKING_URI={masked(uri)}: MLflow server not reachable ({reason})")
