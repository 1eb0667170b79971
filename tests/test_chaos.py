"""Chaos: three workers on one PostgreSQL study and an MLflow server while a killer SIGKILLs a random worker every
few seconds, six times (and starts it again), PostgreSQL restarts once and the MLflow server restarts once. At the
end the two stores agree: TRIALS finished trials (give or take the ones in flight when it was reached), each with
exactly one finished MLflow run, no retry counted twice, nothing left RUNNING."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from sweeps.bench.local_servers import MlflowServer
from sweeps.cli import main
from sweeps.store.status import problems
from sweeps.store.storage import open_storage
from sweeps.store.tracking import Tracker

pytestmark = pytest.mark.slow

TRIALS, WORKERS, KILLS, KILL_EVERY_S, LIMIT_S = 6, 3, 6, 6.0, 480  # the kills and restarts, not TRIALS, make the test


def test_kills_and_restarts_lose_no_trial(tiny: Path, postgres, monkeypatch):
    postgres.createdb("mlflow_chaos")
    postgres.createdb("optuna_chaos")
    server = MlflowServer(postgres.url("mlflow_chaos"))
    server.start()
    try:
        storage = postgres.url("optuna_chaos")
        pulse = {"MLFLOW_TRACKING_URI": server.uri, "SWEEPS_HEARTBEAT_S": "2", "SWEEPS_GRACE_S": "6"}
        argv = ["--storage", storage, "run", "tiny", "--quick", "--trials", str(TRIALS), "--no-report"]

        def finished() -> int:
            try:
                study = optuna.load_study(study_name="tiny-quick", storage=open_storage(storage))
            except KeyError:  # no worker has created it yet
                return 0
            return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

        logs = tiny / "workers.log"

        def start_worker() -> subprocess.Popen:  # output to a file: an unread pipe would block a worker
            with open(logs, "a") as log:
                return subprocess.Popen([sys.executable, "-m", "sweeps.cli", *argv], cwd=tiny, stdout=log,
                                        stderr=subprocess.STDOUT, env={**os.environ, **pulse})

        rng = random.Random(7)
        workers = [start_worker() for _ in range(WORKERS)]
        kills, restarts, started, deadline = 0, [], time.time(), time.time() + LIMIT_S
        # KILLS kills at random moments, then the workers, restarted, finish TRIALS among them (kills beyond KILLS
        # would mostly hit workers still importing TensorFlow, making the test longer, not stronger).
        while time.time() < deadline:
            time.sleep(KILL_EVERY_S if kills < KILLS else 1.0)
            if kills >= KILLS and finished() >= TRIALS:
                break
            victim = rng.randrange(WORKERS) if kills < KILLS else None
            if victim is not None and workers[victim].poll() is None:
                workers[victim].send_signal(signal.SIGKILL)
                kills += 1
            if kills == 3 and "postgres" not in restarts:
                postgres.ctl("restart", "-m", "fast")
                restarts.append("postgres")
            if kills == KILLS and "mlflow" not in restarts:
                server.stop()
                server.start()
                restarts.append("mlflow")
            for i, proc in enumerate(workers):  # killed, or stopped by a restart: start it again
                if proc.poll() is not None:
                    workers[i] = start_worker()
        for proc in workers:
            proc.send_signal(signal.SIGKILL)  # the last blow
            proc.wait(timeout=60)
        kills += WORKERS
        # What any later start does: fail and retry the dead workers' trials, close their runs, reach TRIALS.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        assert main(argv) == 0

        study = optuna.load_study(study_name="tiny-quick", storage=open_storage(storage))
        tracker = Tracker(server.uri, "tiny-quick", create=False)
        assert problems(study, tracker) == []  # one finished MLflow run per finished trial, with metrics and checkpoint
        trials = study.get_trials()
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert TRIALS <= len(done) <= TRIALS + WORKERS - 1
        assert len({tuple(sorted(t.params.items())) for t in done}) == len(done)  # a retry never counted twice
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        mlflow.set_tracking_uri(server.uri)
        runs = mlflow.search_runs(experiment_names=["tiny-quick"])
        assert "RUNNING" not in set(runs["status"])
        assert kills == KILLS + WORKERS and restarts == ["postgres", "mlflow"]
        print(f"\nchaos: {kills} workers killed, restarts {restarts}, {len(trials)} trials "
              f"({len(done)} finished, {sum(t.state == TrialState.FAIL for t in trials)} failed and retried), "
              f"lost 0, {time.time() - started:.0f} s")
    finally:
        server.stop()
