"""Scale out and survive faults: workers on one study, PostgreSQL, an MLflow server, kill -9, a database restart.

After every test the two stores must agree: finished Optuna trials == finished MLflow trial runs, same numbers,
no duplicates, every finished trial with its metrics and checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import optuna
import psutil
import pytest
from optuna.trial import TrialState

from sweeps.cli import main
from sweeps.store.keys import BEST_ALIAS, MODEL_TRIAL
from sweeps.store.registry import point_best_alias
from sweeps.store.status import problems
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import Tracker, tracking_uri

pytestmark = pytest.mark.slow

def sweep_process(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], cwd=root, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(proc: subprocess.Popen, text: str, limit_s: float = 180) -> list[str]:
    seen, deadline = [], time.time() + limit_s
    for line in proc.stdout:
        seen.append(line)
        if text in line or time.time() > deadline:
            return seen
    return seen


def consistent(storage_url: str, tracking: str, name: str) -> optuna.Study:
    study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    assert problems(study, Tracker(tracking, name, create=False)) == []
    numbers = [t.number for t in study.get_trials()]
    assert len(numbers) == len(set(numbers))
    return study


def test_two_workers_share_one_study_on_postgres_and_an_mlflow_server(tiny: Path, postgres, mlflow_server, monkeypatch):
    postgres.createdb("optuna_two")
    url = postgres.url("optuna_two")  # with the password the server checks
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    # A space name of its own: the MLflow server is the session's, and test_cluster.py's two-node sweep of "tiny"
    # writes the experiment tiny-quick there too when xdist runs both tests in one worker.
    (tiny / "search_spaces" / "tiny_pg.yaml").write_text((tiny / "search_spaces" / "tiny.yaml").read_text())
    # The URL in the environment, as docs/scale-out.md says: a command line is readable by every user, and a child
    # is a copy of its parent, argv included, from its fork until its exec (a scan can land in between).
    proc = sweep_process(tiny, "run", "tiny_pg", "--quick", "--trials", "4", "--workers", "2",
                         env={"SWEEPS_STORAGE": url})
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.append(proc.communicate(timeout=600)[0]))
    reader.start()
    seen: dict[int, str] = {}  # pid → command line of each process the command started, as any user sees it
    while reader.is_alive():
        try:  # the template its workers are forked from, and the workers
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:  # ended meanwhile
            break
        for process in family:
            with contextlib.suppress(psutil.Error):
                seen[process.pid] = " ".join(process.cmdline())
        time.sleep(0.2)
    out = said[0]
    assert proc.returncode == 0, out[-3000:]
    assert "[w0]" in out and "[w1]" in out
    assert len(seen) >= 2 and not any(postgres.password in argv for argv in seen.values())  # in their env
    study = consistent(url, mlflow_server, "tiny_pg-quick")
    finished = [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 4 <= len(finished) <= 5  # TRIALS=4: at most the one trial already running when the 4th finished
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both workers trained
    assert len({tuple(sorted(t.params.items())) for t in finished}) == len(finished)  # no duplicated suggestions
    mlflow.set_tracking_uri(mlflow_server)
    runs = mlflow.search_runs(experiment_names=["tiny_pg-quick"])
    assert set(runs.loc[runs["tags.sweeps.kind"] == "sweep", "status"]) == {"FINISHED"}
    assert postgres.password not in out and postgres.password not in runs.astype(str).to_csv()  # never shown
    assert "postgres:***@" in " ".join(runs["params.storage"].dropna())
    assert (tiny / "reports" / "tiny_pg-quick.html").is_file()


def test_a_worker_killed_with_sigkill_is_recovered_and_its_trial_retried(tiny: Path):
    proc = sweep_process(tiny, "run", "tiny", "--quick", "--trials", "2", "--no-report")
    wait_for(proc, "Epoch 1/")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    storage = default_storage(tiny)
    study = optuna.load_study(study_name="tiny-quick", storage=open_storage(storage))
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]  # what a dead worker leaves behind

    assert main(["run", "tiny", "--quick", "--trials", "2", "--no-report"]) == 0
    study = consistent(storage, tracking_uri(tiny), "tiny-quick")
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["fail_reason"] == "worker died"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params == trials[0].params and retried[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    mlflow.set_tracking_uri(tracking_uri(tiny))
    runs = mlflow.search_runs(experiment_names=["tiny-quick"])
    continued = runs[runs["tags.sweeps.continues"] == "0"]  # the killed trial's run, gone on with by its retry
    assert continued["status"].tolist() == ["FINISHED"] and continued["tags.sweeps.trial"].tolist() == [str(retried[0].number)]
    assert "RUNNING" not in set(runs["status"])  # the dead worker's sweep run was closed too


def test_on_postgres_a_dead_workers_trial_is_failed_by_its_heartbeat_and_retried(tiny: Path, postgres, monkeypatch):
    postgres.createdb("optuna_heartbeat")
    url = postgres.url("optuna_heartbeat")
    pulse = {"SWEEPS_HEARTBEAT_S": "1", "SWEEPS_GRACE_S": "3"}
    proc = sweep_process(tiny, "--storage", url, "run", "tiny", "--quick", "--trials", "2", "--no-report", env=pulse)
    wait_for(proc, "Epoch 1/")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(4)  # longer than the grace period
    for key, value in pulse.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sweeps.search.retries.is_alive", lambda worker: None)  # as if it had died on another machine
    assert main(["--storage", url, "run", "tiny", "--quick", "--trials", "2", "--no-report"]) == 0
    study = consistent(url, tracking_uri(tiny), "tiny-quick")
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and "fail_reason" not in trials[0].user_attrs  # not the PID check
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE and retried[0].params == trials[0].params


def test_a_postgres_restart_mid_sweep_loses_nothing(tiny: Path, postgres):
    postgres.createdb("optuna_restart")
    url = postgres.url("optuna_restart")
    proc = sweep_process(tiny, "--storage", url, "run", "tiny", "--quick", "--trials", "4", "--no-report")
    wait_for(proc, "trial   0 COMPLETE")
    postgres.ctl("restart", "-m", "fast")
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:  # a query caught mid-restart: one clear line, then the same command goes on
        assert proc.returncode == 1 and "lost the study store" in out and "Traceback" not in out, out[-3000:]
        assert main(["--storage", url, "run", "tiny", "--quick", "--trials", "4", "--no-report"]) == 0
    study = consistent(url, tracking_uri(tiny), "tiny-quick")
    complete = sum(t.state == TrialState.COMPLETE for t in study.get_trials())
    # A trial created in the instant the server went away, before its worker was recorded, stays RUNNING: Optuna's
    # heartbeat never fails a trial that never beat, and it counts toward TRIALS. Nothing is lost either way.
    unrecorded = [t for t in study.get_trials() if t.state == TrialState.RUNNING and "worker" not in t.user_attrs]
    assert complete >= 4 or (complete + len(unrecorded) >= 4 and proc.returncode == 1)


@pytest.mark.parametrize("args, env, expected, status", [  # 2: the user's input; 1: the environment
    (["--storage", "postgresql://u:secret@127.0.0.1:1/optuna"], {}, "STORAGE=postgresql://u:***@127.0.0.1:1/optuna: cannot connect", 1),
    (["--storage", "postgres//oops"], {}, "STORAGE=postgres//oops: not a database URL", 2),
    (["--storage", "nosuchdb://x"], {}, "STORAGE=nosuchdb://x: not a database URL", 2),
    (["--storage", "mysql://u@127.0.0.1:1/x"], {}, "no driver for it", 2),
    ([], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}, "MLFLOW_TRACKING_URI=http://127.0.0.1:1: MLflow server not reachable", 1),
])
def test_unreachable_or_malformed_stores_stop_before_any_training(tiny: Path, monkeypatch, capsys, args, env, expected,
                                                                  status):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main([*args, "run", "tiny", "--quick"]) == status
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "secret" not in err
    assert not (tiny / ".sweeps" / "work").exists()


def test_status_reports_trials_runs_and_mismatches(tiny: Path, capsys):
    assert main(["run", "tiny", "--quick", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["status", "tiny", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "COMPLETE" in out and "consistent" in out
    mlflow.set_tracking_uri(tracking_uri(tiny))
    run_id = mlflow.search_runs(experiment_names=["tiny-quick"], filter_string="tags.`sweeps.trial` = '1'")["run_id"].item()
    mlflow.MlflowClient().set_terminated(run_id, "FAILED")  # the stores now disagree about trial 1
    assert main(["status", "tiny", "--quick"]) == 1
    assert "trial 1 is COMPLETE in Optuna but has no FINISHED MLflow run" in capsys.readouterr().out
    assert main(["status", "mnist_mlp"]) == 2


def test_workers_pointing_the_best_alias_at_once_all_succeed_on_an_mlflow_server(mlflow_server):
    """MLflow's server sets an alias by reading, then inserting: workers finishing together raced into a unique-key
    error on PostgreSQL (seen failing a two-worker sweep)."""
    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.create_experiment("alias-race")

    def point(name: str, errors: list[str]) -> None:
        try:
            assert point_best_alias(client, name, 3) == 1
        except Exception as exc:  # any error of any thread fails the test
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    for round_ in range(8):
        name = f"alias-race-{round_}"
        client.create_registered_model(name)
        run = client.create_run(experiment).info.run_id
        client.create_model_version(name, f"runs:/{run}/model", run_id=run, tags={MODEL_TRIAL: "3"})
        errors: list[str] = []
        threads = [threading.Thread(target=point, args=(name, errors)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert client.get_model_version_by_alias(name, BEST_ALIAS).version == "1"
