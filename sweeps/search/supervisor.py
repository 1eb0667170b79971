"""Run a sweep's trials in worker processes: ``workers`` at once, each replaced by a fresh one every
``trials_per_process`` trials, so memory that TensorFlow keeps from trial to trial is handed back, and a trial that
crashes its process (out of memory, a segfault) fails alone while the sweep goes on.

This process keeps the study, the one MLflow sweep run, the budget and the count of crashes; it never imports
TensorFlow (an import contract keeps it so). Each worker is a :class:`~sweeps.search.worker.WorkerSpec` started by
a :class:`Placement`: as a process of this machine, or as a task of a Ray cluster (:mod:`sweeps.search.cluster`);
Ctrl-C or SIGTERM here is passed on to every worker, which each stop as a single sweep would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from rich.console import Console

from sweeps.errors import SweepStopped
from sweeps.search.progress import MAX_FAILURES_IN_A_ROW
from sweeps.search.space import Space
from sweeps.search.stopping import ORPHAN_GRACE_S
from sweeps.search.study import Sweep, log_trial_counts, open_sweep, start_sweep_run
from sweeps.search.worker import RECYCLE, SweepOptions, WorkerSpec
from sweeps.store.recovery import (
    close_orphan_runs,
    fail_crashed_trials,
    fail_dead_trials,
    fail_lost_trials,
    queue_left_interrupted,
    worker_id,
)
from sweeps.store.tracking import closing_run
from sweeps.store.trials import target_reached

# How long a worker may take to stop politely after Ctrl-C / SIGTERM (its next batch boundary, then closing its
# runs) before it is killed: a stop is prompt even while a worker imports TensorFlow or traces its first step.
STOP_GRACE_S = 6


MAX_LOST_IN_A_ROW = 5  # worker tasks lost with their nodes, in a row, before the sweep stops (none came back)


def _died(code: int) -> str | None:
    """How a worker died, or None when it exited by itself."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return None


class WorkerProcess(Protocol):
    """A running worker, wherever it runs: a process of this machine (:class:`LocalProcess`) or a task of a
    cluster (:class:`sweeps.search.cluster.RayWorker`)."""

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


class LocalProcess:
    """A worker process of this machine, in a session of its own (Ctrl-C reaches the command only, which passes
    one SIGTERM on); its output prefixed with ``prefix`` when several workers share the terminal."""

    lost: str | None = None

    def __init__(self, spec: WorkerSpec, prefix: str | None, console: Console):
        output = subprocess.PIPE if prefix else None
        self.proc = subprocess.Popen(spec.command(), env=spec.env(), start_new_session=True, stdout=output,
                                     stderr=subprocess.STDOUT if prefix else None, text=True)
        self.id = worker_id(self.proc.pid)  # now, while it runs: its start time is part of it
        if prefix:
            threading.Thread(target=self._pump, args=(prefix, console), daemon=True).start()

    def _pump(self, prefix: str, console: Console) -> None:
        for line in self.proc.stdout or ():
            console.print(f"{prefix} {line.rstrip()}", highlight=False, markup=False)

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


@dataclass
class Workers:
    """The workers of one sweep and what they have done: the running ones, crashes in a row, the first error
    that ends the sweep."""

    sweep: Sweep
    console: Console
    deadline_at: float | None
    launch: Launch
    running: dict[int, WorkerProcess] = field(default_factory=dict)
    crashes: int = 0
    lost_in_a_row: int = 0
    error: BaseException | None = None
    stopping: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, spec: WorkerSpec, slot: int, prefix: str | None) -> WorkerProcess | None:
        """Start ``spec``; None once the sweep is stopping (checked under the lock :meth:`stop_all` takes, so no
        worker starts unseen by it)."""
        with self.lock:
            if self.stopping:
                return None
            proc = self.launch(spec, prefix)
            self.running[slot] = proc
        return proc

    def crashed(self, proc: WorkerProcess, death: str) -> None:
        """A worker died: fail its trial (not retried: it is the likely cause), close its runs, count it."""
        study, tracker = self.sweep.study, self.sweep.tracker
        with self.lock:
            failed = fail_crashed_trials(self.sweep.storage, study, proc.worker(), f"worker process {death}")
            close_orphan_runs(study, tracker)
            self.crashes += 1
            self.console.print(f"worker process {proc.worker()} {death} during trial(s) {failed}: failed, the sweep "
                               "goes on")
            if self.crashes >= MAX_FAILURES_IN_A_ROW:
                raise SweepStopped(f"{MAX_FAILURES_IN_A_ROW} worker processes in a row died (the last {death})")

    def lost(self, proc: WorkerProcess) -> None:
        """A worker was lost with its node: its trial is failed and queued again (it goes on from its last epoch
        wherever a worker takes it), its runs closed; not counted as a crash. A worker process that outlived its
        task queues its trial itself within ORPHAN_GRACE_S: waited for, so the trial is queued once."""
        time.sleep(ORPHAN_GRACE_S + 1)
        with self.lock:
            retried = fail_lost_trials(self.sweep.storage, self.sweep.study, proc.lost or "")
            close_orphan_runs(self.sweep.study, self.sweep.tracker)
            self.lost_in_a_row += 1
            if self.lost_in_a_row > MAX_LOST_IN_A_ROW:
                raise SweepStopped(f"{self.lost_in_a_row} worker tasks in a row were lost (the last: {proc.lost}): the "
                                   "cluster keeps losing its nodes or processes")
        queued = f"; trial(s) {retried} queued again" if retried else ""
        self.console.print(f"a worker was lost with its node or task ({proc.lost}){queued}: its trial goes on from its "
                           "last epoch")

    def target_reached(self) -> bool:
        return target_reached(self.sweep.study, self.sweep.target)

    def stop_all(self) -> None:
        """Ask every running worker to stop (it fails and re-queues its trial, closes its runs); kill those that
        take longer than STOP_GRACE_S in all, or all at once when interrupted again, and do that for them."""
        with self.lock:
            self.stopping = True
            procs = [p for p in self.running.values() if p.poll() is None]
        for proc in procs:
            proc.stop()
        until, killed = time.monotonic() + STOP_GRACE_S, False
        for proc in procs:
            try:
                proc.wait(max(0.0, until - time.monotonic()))
            except (TimeoutError, KeyboardInterrupt):
                proc.kill()
                proc.wait()
                killed = True
        if killed:  # their trials failed and queued again, their runs closed, as the worker would have
            fail_dead_trials(self.sweep.storage, self.sweep.study)
            close_orphan_runs(self.sweep.study, self.sweep.tracker)


def _slot(workers: Workers, spec: WorkerSpec, slot: int, prefix: str | None) -> int:
    """One worker place: start a worker, and a fresh one each time the last ran its share or crashed, until the
    study has its trials or the budget is spent; the exit status of its last worker."""
    code = 0
    while not workers.stopping and (workers.deadline_at is None or time.time() < workers.deadline_at):
        proc = workers.start(spec, slot, prefix)
        if proc is None:
            return code
        code = proc.wait()
        death = _died(code)
        if workers.stopping or (death is None and code != RECYCLE and proc.lost is None):
            return code
        if proc.lost is not None:  # its machine went away: its trial goes on elsewhere from its last epoch
            workers.lost(proc)
        elif death is not None:
            workers.crashed(proc, death)
        else:
            workers.crashes = workers.lost_in_a_row = 0
        if workers.target_reached():
            return 0
    return 0 if code == RECYCLE else code


def _run_slot(workers: Workers, spec: WorkerSpec, slot: int, prefix: str | None, codes: list[int]) -> None:
    try:
        codes[slot] = _slot(workers, spec, slot, prefix)
    except BaseException as exc:  # handed to the main thread, which stops the other workers
        workers.error = exc


def _wait(workers: Workers, specs: list[WorkerSpec]) -> int:
    """Run every worker place in a thread; the worst exit status. Ctrl-C (in this, the main thread) or a place's
    error stops the others."""
    codes = [0] * len(specs)
    prefix = (lambda i: f"[w{i}]") if len(specs) > 1 else (lambda i: None)
    threads = [threading.Thread(target=_run_slot, args=(workers, spec, i, prefix(i), codes), daemon=True)
               for i, spec in enumerate(specs)]
    for thread in threads:
        thread.start()
    try:
        while True:
            if workers.error is not None:
                raise workers.error
            alive = [t for t in threads if t.is_alive()]
            if not alive:
                break
            alive[0].join(0.2)  # a short wait: Ctrl-C reaches this thread between two
    except BaseException:
        workers.stop_all()
        raise
    return max(codes)


def local_gpus() -> list[str]:
    """The GPUs of this machine a worker may be given: those in $CUDA_VISIBLE_DEVICES when set, else those
    ``nvidia-smi`` lists (none without it)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


class Placement(Protocol):
    """Where a sweep's workers run and with what: this machine's processes, or a cluster's tasks."""

    def spec(self, first: WorkerSpec, index: int) -> WorkerSpec:
        """Worker ``index``'s spec: ``first`` with what this placement decides for it (threads, GPUs)."""

    def launch(self, spec: WorkerSpec, prefix: str | None) -> WorkerProcess: ...


@dataclass
class LocalPlacement:
    """Worker processes of this machine: the cores split between them (unless --cpus-per-trial says), and on a
    machine with GPUs each worker its own (round robin)."""

    options: SweepOptions
    console: Console
    gpus: list[str] = field(default_factory=local_gpus)

    def spec(self, first: WorkerSpec, index: int) -> WorkerSpec:
        workers = self.options.workers
        threads = self.options.cpus_per_trial or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None)
        devices = self.gpus[index % len(self.gpus)] if self.gpus and workers > 1 else None
        return replace(first, worker_index=index, threads=int(threads) if threads else None, devices=devices)

    def launch(self, spec: WorkerSpec, prefix: str | None) -> WorkerProcess:
        return LocalProcess(spec, prefix, self.console)


def supervise(space: Space, root: Path, options: SweepOptions, console: Console) -> int:
    """Run workers until the study has its trials or the budget is spent; the exit status of the sweep. On this
    machine, or placed by a Ray cluster (``options.cluster``), connected to before anything is written."""
    if options.cluster == "ray":
        from sweeps.search.cluster import ray_placement  # Ray only for a sweep on a cluster

        with ray_placement(space, root, options, console) as placement:
            return _supervise(space, root, options, console, placement)
    return _supervise(space, root, options, console, LocalPlacement(options, console))


def _supervise(space: Space, root: Path, options: SweepOptions, console: Console, placement: Placement) -> int:
    sweep = open_sweep(space, root, options, console)
    queue_left_interrupted(sweep.storage, sweep.study)  # once, before any worker starts
    share = options.trials_per_process or None
    recycling = f"; a fresh worker process every {share} trials" if share else ""
    count = f"; {options.workers} worker processes" if options.workers > 1 else ""
    if not sweep.has_work(console, announce=count + recycling):
        return 0
    timeout = options.budget(space)
    deadline_at = time.time() + timeout if timeout else None
    run_id = start_sweep_run(sweep, timeout)
    first = WorkerSpec.of(space, root, options, sweep_run=run_id, deadline_at=deadline_at, share=share)
    specs = [placement.spec(first, i) for i in range(options.workers)]
    workers = Workers(sweep, console, deadline_at, placement.launch)
    with closing_run(sweep.tracker, run_id, before_close=lambda status: log_trial_counts(sweep, run_id)) as end:
        code = _wait(workers, specs)
        if code != 0:
            end.fail()
    return code
