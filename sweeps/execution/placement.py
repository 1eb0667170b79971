"""Where a sweep's workers run, as the pool sees it: a :class:`Placement` turns a worker's spec into a running
:class:`WorkerProcess`, a process of this machine (:mod:`sweeps.execution.local`) or a task of a Ray cluster
(:mod:`sweeps.execution.ray_cluster`); both stop politely, then are killed after one grace period."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from sweeps.execution.spec import WorkerSpec
from sweeps.processes import worker_id
from sweeps.signals import STOP_GRACE_S

STEP_S = 0.2  # a wait's step: Ctrl-C and Ray's cancel are raised in Python between two steps, never inside one


class Stoppable(Protocol):
    """Something that runs and can be ended: asked to stop, waited for, killed."""

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (negative: killed by that signal); TimeoutError when still running after ``timeout``."""

    def stop(self) -> None:
        """Ask it to stop politely (its trial is queued again to go on later)."""

    def kill(self) -> None: ...


def stop_then_kill(procs: Sequence[Stoppable], grace_s: float = STOP_GRACE_S) -> bool:
    """The one way workers are ended: each asked to stop, then those still running after ``grace_s`` in all killed
    (at once when interrupted again); whether any had to be."""
    for proc in procs:
        proc.stop()
    until, killed = time.monotonic() + grace_s, False
    for proc in procs:
        try:
            proc.wait(max(0.0, until - time.monotonic()))
        except (TimeoutError, KeyboardInterrupt):
            proc.kill()
            proc.wait()
            killed = True
    return killed


def wait_in_steps(done: Callable[[], bool]) -> None:
    """Wait until ``done()``, in short steps (see STEP_S)."""
    while not done():
        time.sleep(STEP_S)


class ChildProcess:
    """A process in a session of its own (a Ctrl-C at the terminal reaches only the command that started it), as
    a :class:`Stoppable`: SIGTERM asks it to stop; its worker id read while it runs (its start time is part of it)."""

    def __init__(self, command: list[str], env: dict[str, str], output: int | None = None):
        self.proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=output,
                                     stderr=subprocess.STDOUT if output is not None else None, text=True)
        self.id = worker_id(self.proc.pid)

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"worker {self.proc.pid} still running") from None

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.proc.kill()

    def worker(self) -> str:
        return self.id


class WorkerProcess(Stoppable, Protocol):
    """A running worker, wherever it runs: a process of this machine (:class:`sweeps.execution.local.LocalProcess`) or a task of a
    cluster (:class:`sweeps.execution.ray_cluster.RayWorker`)."""

    lost: str | None  # when the worker was lost with its node or task (not its trial's doing): the task's name

    def poll(self) -> int | None: ...

    def worker(self) -> str:
        """The worker process as its trials record it (``host:pid``)."""


Launch = Callable[[WorkerSpec, str | None], WorkerProcess]


class Placement(Protocol):
    """Where a sweep's workers run and with what: this machine's processes, or a cluster's tasks."""

    def spec(self, first: WorkerSpec, index: int) -> WorkerSpec:
        """Worker ``index``'s spec: ``first`` with what this placement decides for it (threads, GPUs)."""

    def launch(self, spec: WorkerSpec, prefix: str | None) -> WorkerProcess: ...
