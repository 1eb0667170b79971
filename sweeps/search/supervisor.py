"""Run a sweep's trials in worker processes: a fresh one every ``trials_per_process`` trials, so memory that
TensorFlow keeps from trial to trial is handed back, and a trial that crashes its process (out of memory, a
segfault) fails alone while the sweep goes on.

This process keeps the study, the MLflow sweep run, the budget and the count of crashes; it never imports
TensorFlow. Each worker is a plain ``sweep run`` that trains its share and exits with :data:`RECYCLE`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from experiments.data import load_raw
from sweeps.errors import SweepStopped
from sweeps.search.progress import MAX_FAILURES_IN_A_ROW
from sweeps.search.samplers import make_pruner, make_sampler
from sweeps.search.space import Space
from sweeps.search.study import (
    SweepOptions,
    budget_s,
    count_finished,
    count_running,
    end_sweep_run,
    open_study,
    start_sweep_run,
    target_trials,
)
from sweeps.store.recovery import close_orphan_runs, fail_crashed_trials, worker_id
from sweeps.store.storage import check_tracking, child_env, default_storage, masked, open_storage
from sweeps.store.tracking import Tracker, tracking_uri

RECYCLE = 75  # a worker's exit status: it ran its share of trials and the study wants more (EX_TEMPFAIL)
STOP_GRACE_S = 60  # how long a worker may take to close its runs after Ctrl-C / SIGTERM


def _died(code: int) -> str | None:
    """How a worker died, or None when it exited by itself."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return None


def _stop(worker: subprocess.Popen | None) -> None:
    """Ask a running worker to stop (it fails and re-queues its trial, closes its runs); kill it when it takes
    longer than STOP_GRACE_S or when interrupted again."""
    if worker is None or worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        worker.kill()
        worker.wait()


def supervise(space: Space, root: Path, options: SweepOptions, worker_argv: list[str], console: Console) -> int:
    """Run ``sweep <worker_argv>`` worker processes one after the other until the study has its trials or the
    budget is spent; returns the exit status of the sweep (that of the last worker)."""
    # What can be wrong with the input is found before anything is written (the data check needs no TensorFlow).
    make_sampler(space), make_pruner(space)
    load_raw(space.spec.dataset)
    url = options.storage or default_storage(root)
    tracking = tracking_uri(root)
    check_tracking(tracking)
    study = open_study(space, open_storage(url), options.quick, console, options.worker_index, options.engine)
    tracker = Tracker(tracking, study.study_name)
    target, timeout = target_trials(space, options), budget_s(space, options)
    done, running = count_finished(study), count_running(study)
    console.print(f"study {study.study_name} in {masked(url)}: {done} finished trials, {running} running, target "
                  f"{target}; a fresh worker process every {options.trials_per_process} trials")
    if done + running >= target:
        console.print(f"nothing to do: {done} finished + {running} running ≥ {target} (raise TRIALS to go on)")
        return 0
    deadline_at = time.time() + timeout if timeout else None
    sweep_run = start_sweep_run(tracker, study.study_name, space, root, options, url)
    argv = [*worker_argv, "--sweep-run", sweep_run, "--trials-per-process", str(options.trials_per_process),
            *(["--deadline-at", repr(deadline_at)] if deadline_at else [])]
    status, code, crashes, worker = "FAILED", 0, 0, None
    try:
        while deadline_at is None or time.time() < deadline_at:
            # Its own session: Ctrl-C reaches this process only, which passes one SIGTERM on (see _stop).
            worker = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *argv], start_new_session=True,
                                      env=child_env(options.storage))
            code = worker.wait()
            death = _died(code)
            if death is None and code != RECYCLE:
                break
            if death is not None:
                crashes += 1
                failed = fail_crashed_trials(study, worker_id(worker.pid), f"worker process {death}")
                close_orphan_runs(study, tracker)
                console.print(f"worker process {worker.pid} {death} during trial(s) {failed}: failed, the sweep goes on")
                if crashes >= MAX_FAILURES_IN_A_ROW:
                    raise SweepStopped(f"{MAX_FAILURES_IN_A_ROW} worker processes in a row died (the last {death})")
            else:
                crashes = 0
            if count_finished(study) + count_running(study) >= target:
                code = 0
                break
        else:
            code = 0
        status = "FINISHED" if code == 0 else "FAILED"
    except KeyboardInterrupt:
        status = "KILLED"
        _stop(worker)
        raise
    finally:
        end_sweep_run(tracker, study, sweep_run, status)
    if code == 0:
        console.print(f"study {study.study_name}: {count_finished(study)} finished trials")
    return code
