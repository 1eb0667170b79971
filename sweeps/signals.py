"""Polite stops: Ctrl-C or SIGTERM only sets a flag, and training stops at the next point Python reaches between
batches (raising there, never inside a TensorFlow call); a second signal aborts at once.

An exception raised straight from a signal handler can land inside TensorFlow's C++ code or a finaliser, where it is
garbled or swallowed ("pybind11 ... MISMATCH", "Exception ignored in ...").
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, TextIO

_requested: list[int] = []
# How long a polite stop may take before it is forced, wherever it is forced (a pool ending its workers, a cluster
# task its worker process, a worker whose command died itself): its next batch boundary, then closing its runs; a
# stop is prompt even while a worker imports TensorFlow or traces its first step.
STOP_GRACE_S = 6.0


def _on_signal(signum: int, frame) -> None:
    if _requested:
        raise KeyboardInterrupt(f"signal {signum}, again")
    _requested.append(signum)


def _raise_now(signum: int, frame) -> None:
    _requested.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def install(polite: bool) -> None:
    """Handle SIGINT and SIGTERM: ``polite`` (a process that trains) sets the flag; otherwise raise at once (a
    process that only waits, such as the supervisor of worker processes)."""
    handler = _on_signal if polite else _raise_now
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def exit_status() -> int:
    """The shell's status for a process ended by the signal that stopped it: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + (_requested[0] if _requested else signal.SIGINT)


def check() -> None:
    """Raise KeyboardInterrupt if a stop was asked for; call it where stopping is safe."""
    if _requested:
        raise KeyboardInterrupt(f"signal {_requested[0]}")


def _watch(parent: int, poll_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_s)
    os.kill(os.getpid(), signal.SIGTERM)  # a polite stop: the trial is failed and queued again, its runs closed
    time.sleep(STOP_GRACE_S)
    os.kill(os.getpid(), signal.SIGTERM)  # the second signal aborts at once


class _OrphanSafe:
    """A worker's stdout or stderr: a pipe the command that started it reads. Once that command is gone, a write
    raises BrokenPipeError wherever it happens (a Keras progress line in mid-epoch) and would fail the trial as its
    own error; instead the output goes nowhere and the worker stops politely, as on SIGTERM, so its trial is queued
    to go on."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._orphaned()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._orphaned()

    def _orphaned(self) -> None:
        self._stream = open(os.devnull, "w")  # the process's output from now on
        if not _requested:
            _requested.append(signal.SIGTERM)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def stop_with_parent(poll_s: float = 0.5) -> None:
    """End this process when the one that started it dies (a worker of a ``sweep run`` killed by any signal, its
    process group included: the worker runs in a session of its own, so nothing else would reach it). Watching
    the parent's pid works on every POSIX system, unlike Linux's parent-death signal; a write to the dead parent's
    pipe, which can come first, stops it politely too."""
    sys.stdout, sys.stderr = _OrphanSafe(sys.stdout), _OrphanSafe(sys.stderr)
    parent = os.getppid()
    if parent == 1:  # the command died before this process got here
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=_watch, args=(parent, poll_s), name="parent-watch", daemon=True).start()
