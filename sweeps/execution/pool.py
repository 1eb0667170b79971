"""Run a sweep's trials in worker processes: ``workers`` at once, each replaced by a fresh one every
``trials_per_process`` trials, so memory that TensorFlow keeps from trial to trial is handed back, and a trial that
crashes its process (out of memory, a segfault) fails alone while the sweep goes on.

This process keeps the study, the one MLflow sweep run, the budget and the count of crashes; it never imports
TensorFlow (an import contract keeps it so). Each worker is a :class:`~sweeps.execution.spec.WorkerSpec` started by
a :class:`~sweeps.execution.placement.Placement` the launcher chose; Ctrl-C or SIGTERM here is passed on to every
worker, which each stop as a single sweep would.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from sweeps.console.lines import nothing_to_do_line, standing_line
from sweeps.errors import SweepStopped
from sweeps.execution.placement import Launch, Placement, WorkerProcess, stop_then_kill, wait_in_steps
from sweeps.execution.spec import RECYCLE, WorkerSpec
from sweeps.search.options import SweepOptions
from sweeps.search.retries import fail_crashed_trials, fail_dead_trials, fail_lost_trials, queue_left_interrupted
from sweeps.search.stop_rules import MAX_FAILURES_IN_A_ROW
from sweeps.search.study import Sweep, log_trial_counts, open_sweep, start_sweep_run
from sweeps.signals import STOP_GRACE_S
from sweeps.space.space import Space
from sweeps.store.storage import masked
from sweeps.store.tracking import closing_run
from sweeps.store.trials import StudyTrials, target_reached

MAX_LOST_IN_A_ROW = 5  # worker tasks lost with their nodes, in a row, before the sweep stops (none came back)


def _died(code: int) -> str | None:
    """How a worker died, or None when it exited by itself."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return None


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
        """A worker died: fail its trial (not retried: it is the likely cause) and count it. Its runs are closed at
        the next worker's start or the sweep's end, the two moments that close what dead workers left open."""
        with self.lock:
            failed = fail_crashed_trials(self.sweep.storage, self.sweep.study, proc.worker(), f"worker process {death}")
            self.crashes += 1
            self.console.print(f"worker process {proc.worker()} {death} during trial(s) {failed}: failed, the sweep "
                               "goes on")
            if self.crashes >= MAX_FAILURES_IN_A_ROW:
                raise SweepStopped(f"{MAX_FAILURES_IN_A_ROW} worker processes in a row died (the last {death})")

    def lost(self, proc: WorkerProcess) -> None:
        """A worker was lost with its node: its trial is failed and queued again (it goes on from its last epoch
        wherever a worker takes it); not counted as a crash. A worker process that outlived its
        task queues its trial itself within STOP_GRACE_S: waited for, so the trial is queued once."""
        time.sleep(STOP_GRACE_S + 1)
        with self.lock:
            retried = fail_lost_trials(self.sweep.storage, self.sweep.study, proc.lost or "")
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
        """Ask every running worker to stop (it fails and re-queues its trial, closes its runs), killing those that
        take longer than the grace period, and do that for the killed ones."""
        with self.lock:
            self.stopping = True
            procs = [p for p in self.running.values() if p.poll() is None]
        if stop_then_kill(procs):  # their trials failed and queued again, as the worker would have (runs: at the end)
            fail_dead_trials(self.sweep.storage, self.sweep.study)


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
        wait_in_steps(lambda: workers.error is not None or not any(t.is_alive() for t in threads))
        if workers.error is not None:
            raise workers.error
    except BaseException:
        workers.stop_all()
        raise
    return max(codes)


def supervise(space: Space, root: Path, options: SweepOptions, console: Console, placement: Placement) -> int:
    """Run workers where ``placement`` puts them until the study has its trials or the budget is spent; the exit
    status of the sweep."""
    sweep = open_sweep(space, root, options, console)
    queue_left_interrupted(sweep.storage, sweep.study)  # once, before any worker starts
    share = options.trials_per_process or None
    recycling = f"; a fresh worker process every {share} trials" if share else ""
    count = f"; {options.workers} worker processes" if options.workers > 1 else ""
    now = StudyTrials(sweep.study)
    console.print(standing_line(sweep.name, masked(sweep.url), now, sweep.target, count + recycling))
    if not sweep.wants_more(now):
        console.print(nothing_to_do_line(now, sweep.target))
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

