"""Worker processes: a fresh one every N trials, and a trial that kills its process fails alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from sweeps.processes import worker_pid
from sweeps.store.keys import WORKER
from sweeps.store.status import problems
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import Tracker, tracking_uri

pytestmark = pytest.mark.slow

SLOW_MLP = """\
dataset: fashion_mnist
model: mlp
train: {epochs: 10, batch_size: 64}  # long enough to be killed mid-trial (on the --subset of the commands below)
params:
  units: {type: categorical, choices: [32, 64]}
  dropout: {type: float, low: 0.0, high: 0.3}
sweep:
  sampler: {name: random}
  pruner: {name: none}
"""
SUBSET = "10000"  # training images: a trial of some seconds, not the whole 50,000's tens of seconds


def _running_worker(root: Path, timeout: float = 120) -> tuple[int, int]:
    """(trial number, pid) of the first trial seen training, once it has trained an epoch."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            study = optuna.load_study(study_name="slow", storage=open_storage(default_storage(root)))
            for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                if WORKER in trial.user_attrs and trial.number >= 1:
                    time.sleep(1.5)  # inside fit
                    return trial.number, worker_pid(trial.user_attrs[WORKER])
        except (KeyError, ValueError):
            pass  # the study is not created yet
        time.sleep(0.5)
    raise AssertionError("no trial started training")


def test_workers_are_recycled_and_a_crashed_trial_fails_alone(project: Path):
    (project / "search_spaces" / "slow.yaml").write_text(SLOW_MLP)
    command = [sys.executable, "-m", "sweeps.cli", "run", "slow", "--trials", "4", "--trials-per-process", "2",
               "--subset", SUBSET, "--no-report"]
    proc = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    crashed, pid = _running_worker(project)
    assert pid != proc.pid  # trials train in a worker process, not in the command's own
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert f"killed by SIGKILL during trial(s) [{crashed}]" in out and "Traceback" not in out

    trials = optuna.load_study(study_name="slow", storage=open_storage(default_storage(project))).get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 1 and len(trials) == 5  # not retried
    assert trials[crashed].user_attrs["fail_reason"] == "worker process killed by SIGKILL"
    workers = {t.user_attrs[WORKER] for t in trials}
    assert len(workers) >= 3  # trials 0-1 in one process, the crash in another, the rest in a third
    tracker = Tracker(tracking_uri(project), "slow", create=False)
    assert problems(optuna.load_study(study_name="slow", storage=open_storage(default_storage(project))), tracker) == []
    sweep_runs = tracker.runs(kind="sweep")
    assert len(sweep_runs) == 1 and sweep_runs["status"].item() == "FINISHED"  # one sweep run across the workers


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_never_outlives_its_command_killed_with_its_process_group(project: Path):
    """kill -9 of the command's process group (a job scheduler, a closed terminal) misses the worker, which runs in
    a session of its own; it ends within 5 s by itself, and the next start finishes the study."""
    (project / "search_spaces" / "slow.yaml").write_text(SLOW_MLP)
    command = [sys.executable, "-m", "sweeps.cli", "run", "slow", "--trials", "2", "--subset", SUBSET, "--no-report"]
    proc = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "SWEEPS_TRIALS_PER_PROCESS": "10"})
    _, worker = _running_worker(project)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    while _alive(worker) and time.monotonic() - killed < 30:
        time.sleep(0.1)
    assert not _alive(worker) and time.monotonic() - killed < 5
    again = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "SWEEPS_TRIALS_PER_PROCESS": "10"})
    assert again.returncode == 0, again.stdout + again.stderr
    study = optuna.load_study(study_name="slow", storage=open_storage(default_storage(project)))
    assert [t.state.name for t in study.get_trials()].count("COMPLETE") == 2
    assert problems(study, Tracker(tracking_uri(project), "slow", create=False)) == []


DEAF = """\
import time

from sweeps.execution.worker_loop import Extensions


def deaf_training(*args, **kwargs):
    time.sleep(120)  # never reaches a batch boundary: a polite stop does not reach it


def extensions(space):
    return Extensions(train=deaf_training, register_best=False)
"""


def test_a_stop_is_prompt_even_when_a_worker_does_not_listen(tiny: Path):
    """SIGTERM to the command: a worker that does not stop within the grace is killed, and the command itself
    fails and queues its trial again and closes its runs, so nothing is left RUNNING."""
    (tiny / "deaf.py").write_text(DEAF)
    command = [sys.executable, "-m", "sweeps.cli", "run", "tiny", "--trials", "1", "--no-report",
               "--extensions", "deaf:extensions"]
    proc = subprocess.Popen(command, cwd=tiny, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SWEEPS_TRIALS_PER_PROCESS": "10"})
    deadline = time.time() + 120
    while time.time() < deadline:  # until the worker has its trial
        try:
            study = optuna.load_study(study_name="tiny", storage=open_storage(default_storage(tiny)))
            if any(WORKER in t.user_attrs for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))):
                break
        except KeyError:
            pass
        time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.monotonic() - sent < 10, out
    assert out.count("interrupted:") == 1 and "Traceback" not in out
    study = optuna.load_study(study_name="tiny", storage=open_storage(default_storage(tiny)))
    states = sorted(t.state.name for t in study.get_trials())
    assert states == ["FAIL", "WAITING"]  # failed and queued again: the next start trains it
    tracker = Tracker(tracking_uri(tiny), "tiny", create=False)
    assert "RUNNING" not in set(tracker.runs()["status"])
