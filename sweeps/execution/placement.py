"""Where a sweep's workers run, as the pool sees it: a :class:`Placement` turns a worker's spec into a running
:class:`WorkerProcess`, a process of this machine (:mod:`sweeps.execution.local`) or a task of a Ray cluster
(:mod:`sweeps.execution.ray_cluster`); both stop politely, then are killed after one grace period."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sweeps.execution.spec import WorkerSpec

# How long a worker may take to stop politely after Ctrl-C / SIGTERM (its next batch boundary, then closing its
# runs) before it is killed: a stop is prompt even while a worker imports TensorFlow or traces its first step.
STOP_GRACE_S = 6


class WorkerProcess(Protocol):
    """A running worker, wherever it runs: a process of this machine (:class:`LocalProcess`) or a task of a
    cluster (:class:`sweeps.execution.ray_cluster.RayWorker`)."""

    lost: str | None  # when the worker was lost with its node or task (not its trial's doing): the task's name

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (negative: killed by that signal); TimeoutError when still running after ``timeout``."""

    def poll(self) -> int | None: ...

    def stop(self) -> None:
        """Ask it to stop politely (its trial is queued again to go on later)."""

    def kill(self) -> None: ...

    def worker(self) -> str:
        """The worker process as its trials record it (``host:pid``)."""


Launch = Callable[[WorkerSpec, str | None], WorkerProcess]


class Placement(Protocol):
    """Where a sweep's workers run and with what: this machine's processes, or a cluster's tasks."""

    def spec(self, first: WorkerSpec, index: int) -> WorkerSpec:
        """Worker ``index``'s spec: ``first`` with what this placement decides for it (threads, GPUs)."""

    def launch(self, spec: WorkerSpec, prefix: str | None) -> WorkerProcess: ...
