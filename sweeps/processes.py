"""Which process this is, and whether a recorded one still runs: the identity a trial records as its worker
(``host:pid:start``), the Ray node and task it runs for. The store only keeps these strings; what to do with a dead
worker's trial is :mod:`sweeps.search.retries`'."""

from __future__ import annotations

import os
import socket

import psutil


def worker_id(pid: int | None = None) -> str:
    """A process of this machine (this one by default), as ``host:pid:start``: its start time tells it from a later
    process given the same pid."""
    pid = pid or os.getpid()
    try:
        start = f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:  # already gone: no later process can match it
        start = "gone"
    return f"{socket.gethostname()}:{pid}:{start}"


def worker_pid(worker: str) -> int:
    """The pid of a worker recorded as ``host:pid:start`` (or ``host:pid``)."""
    return int(worker.split(":")[1])


def node_name() -> str:
    """The machine this process runs on: the Ray node's id its task was given (``$SWEEPS_NODE``), else the host."""
    return os.environ.get("SWEEPS_NODE") or socket.gethostname()


def task_name() -> str | None:
    """The cluster task this worker process runs for (``$SWEEPS_TASK``); None outside a cluster."""
    return os.environ.get("SWEEPS_TASK") or None


def is_alive(worker: str) -> bool | None:
    """Whether the process ``host:pid:start`` (or an older record's ``host:pid``) still runs; None when it ran on
    another machine (only a heartbeat can tell)."""
    host, pid, start = (*worker.split(":"), "", "")[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        running = psutil.Process(int(pid))
        return not start or f"{running.create_time():.2f}" == start
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # another user's process: it exists
        return True
