"""Polite stops: Ctrl-C or SIGTERM only sets a flag, and training stops at the next point Python reaches between
batches (raising there, never inside a TensorFlow call); a second signal aborts at once.

An exception raised straight from a signal handler can land inside TensorFlow's C++ code or a finaliser, where it is
garbled or swallowed ("pybind11 ... MISMATCH", "Exception ignored in ...").
"""

from __future__ import annotations

import signal

_requested: list[int] = []


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
