"""A stand-in for a worker's module in tests/test_forked.py: what it was started with, printed, and its status."""

from __future__ import annotations

import gc
import os
import sys
import time


def main(argv: list[str]) -> int:
    imported = "tensorflow" in sys.modules  # before anything here imports it: the template's preload
    sql_store = "mlflow.store.tracking.sqlalchemy_store" in sys.modules  # what a worker opens lazily, preloaded too
    print(f"probe={os.environ.get('PROBE')} cwd={os.getcwd()} own_session={os.getsid(0) == os.getpid()} "
          f"tensorflow_imported={imported} sql_store_imported={sql_store} argv={argv}", flush=True)
    if "hold" in argv[1:]:  # still running whenever the test signals it, however soon that is
        time.sleep(120)
    return int(argv[0])


def collector() -> dict:
    """The garbage collector's state here: called in a process forked from the template, it reads the template's."""
    return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "full_collections": gc.get_stats()[2]["collections"]}
